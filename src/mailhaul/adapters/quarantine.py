"""The quarantine: infected messages kept out of the owner's mailbox, one Maildir per
account under ``{home}/quarantine/<account id>`` (every folder 0700, files 0600).

A message is durable here before it is recorded as handled (file fsync'd, renamed into
new/, new/ fsync'd), exactly as a Maildir delivery; the database row that lists it is
written in the same transaction as the record that lets the source delete it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.adapters.scanners.channel import BLOCK
from mailhaul.adapters.sinks.transforms import CrlfToLf
from mailhaul.domain.errors import NotFound, TemporaryDeliveryError

_counter = itertools.count()


class QuarantineBox:
    """The quarantine Maildirs under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def maildir(self, account_id: int) -> Path:
        """The quarantine Maildir of one account."""
        return self.root / str(int(account_id))

    def store(self, account_id: int, head: bytes, spool: BinaryIO) -> str:
        """Keep ``head`` (headers to prepend) + the spooled message; its durable file name."""
        maildir = self.maildir(account_id)
        name = f"{int(time.time())}.P{os.getpid()}Q{next(_counter)}.quarantine"
        tmp, new = maildir / "tmp" / name, maildir / "new" / name
        try:
            for sub in ("tmp", "new", "cur"):
                make_private_dirs(maildir / sub)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                lf = CrlfToLf()  # a Maildir holds LF line ends
                spool.seek(0)
                for block in itertools.chain((head,), iter(lambda: spool.read(BLOCK), b"")):
                    _write_all(fd, lf.feed(block))
                _write_all(fd, lf.finish())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, new)
            dir_fd = os.open(maildir / "new", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            reason = "disk full (or quota exceeded)" if full else exc.strerror or str(exc)
            raise TemporaryDeliveryError(f"cannot quarantine into {maildir}: {reason}") from exc
        return name

    def path(self, account_id: int, name: str) -> Path:
        """Where a quarantined message is; NotFound when it is gone."""
        if "/" in name or name.startswith("."):
            raise NotFound(f"no quarantined message {name!r}")
        path = self.maildir(account_id) / "new" / name
        if not path.is_file():
            raise NotFound(f"the quarantined message {name} is gone from {path.parent}")
        return path

    def read(self, account_id: int, name: str) -> Iterator[bytes]:
        """A quarantined message, in blocks."""
        with self.path(account_id, name).open("rb") as file:
            while block := file.read(BLOCK):
                yield block

    def remove(self, account_id: int, name: str) -> None:
        """Delete a quarantined message (already gone is fine)."""
        with contextlib.suppress(FileNotFoundError):
            (self.maildir(account_id) / "new" / name).unlink()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
