"""The spool: one message held on disk while the filter stage judges it.

An anonymous temporary file in ``{home}/spool`` (0700), unlinked from the start: nothing is
left behind by a crash, and memory stays flat whatever the message's size.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.domain.errors import TemporaryDeliveryError


class Spool:
    """A message being spooled: ``write`` its bytes, then read ``file`` from the start."""

    def __init__(self, folder: Path) -> None:
        try:
            make_private_dirs(folder)
            self.file: BinaryIO = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115
        except OSError as exc:
            raise _error("create a spool file in", folder, exc) from exc
        self._folder = folder
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append bytes (as the server sent them)."""
        try:
            self.file.write(chunk)
        except OSError as exc:
            raise _error("write the spool file in", self._folder, exc) from exc
        self.size += len(chunk)

    def rewind(self) -> BinaryIO:
        """The file, flushed and at its start."""
        try:
            self.file.flush()
            self.file.seek(0)
        except OSError as exc:
            raise _error("write the spool file in", self._folder, exc) from exc
        return self.file

    def close(self) -> None:
        """Let the file go (it has no name: the space is freed)."""
        self.file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _error(action: str, folder: Path, exc: OSError) -> TemporaryDeliveryError:
    reason = (
        "disk full (or quota exceeded)"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT)
        else exc.strerror or str(exc)
    )
    return TemporaryDeliveryError(f"cannot {action} {folder}: {reason}")
