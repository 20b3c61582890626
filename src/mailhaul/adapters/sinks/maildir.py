"""Maildir delivery: tmp/ → fsync → new/, one Maildir per destination address.

Messages are written byte for byte as the server sent them, except that CRLF line ends
become LF, as Maildir requires. The unique file name is chosen before delivery and
recorded as the receipt, so a run that crashed between delivering and recording can
later find out whether the file made it (``was_delivered``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import threading
import time
from pathlib import Path

from mailhaul.domain.addresses import split_address
from mailhaul.domain.errors import ConfigError, TemporaryDeliveryError

_counter = itertools.count()


def _safe_hostname() -> str:
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"


def _delivery_error(action: str, path: Path, exc: OSError) -> TemporaryDeliveryError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "disk full (or quota exceeded)"
    else:
        reason = exc.strerror or str(exc)
    return TemporaryDeliveryError(f"cannot {action} {path}: {reason}")


class MaildirDelivery:
    """One message being written into a Maildir's tmp/."""

    def __init__(self, sink: MaildirSink, maildir: Path, name: str) -> None:
        self._sink = sink
        self._maildir = maildir
        self._name = name
        self._tmp = maildir / "tmp" / name
        try:
            self._fd: int | None = os.open(
                self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise _delivery_error("create", self._tmp, exc) from exc
        self._pending_cr = False

    def write(self, chunk: bytes) -> None:
        """Append a chunk, turning CRLF into LF (a CR split from its LF is carried over)."""
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        self._write_raw(chunk.replace(b"\r\n", b"\n"))

    def _write_raw(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.abort()
            raise _delivery_error("write", self._tmp, exc) from exc

    def commit(self) -> str:
        """fsync the file and move it into new/; durable once the sink is flushed."""
        if self._pending_cr:
            self._pending_cr = False
            self._write_raw(b"\r")
        assert self._fd is not None
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.rename(self._tmp, self._maildir / "new" / self._name)
        except OSError as exc:
            self.abort()
            raise _delivery_error("deliver", self._tmp, exc) from exc
        self._sink.mark_dirty(self._maildir)
        return self._name

    def abort(self) -> None:
        """Remove the partial file; never raises."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            self._tmp.unlink(missing_ok=True)


class MaildirSink:
    """Delivers into ``path_template`` filled with {home}, {address}, {domain}, {local}."""

    def __init__(self, path_template: str, home: Path) -> None:
        self.path_template = path_template
        self.home = home
        self._ready: set[Path] = set()
        self._local = threading.local()  # per thread: Maildirs whose new/ needs an fsync
        self._lock = threading.Lock()
        self._hostname = _safe_hostname()

    def maildir_for(self, destination: str) -> Path:
        """The Maildir path of a destination address."""
        local, domain = split_address(destination)
        try:
            path = self.path_template.format(
                home=self.home, address=f"{local}@{domain}", domain=domain, local=local
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"delivery.maildir_path {self.path_template!r} is not a valid template: {exc}"
            ) from exc
        return Path(path)

    def _ensure(self, maildir: Path) -> None:
        if maildir in self._ready:
            return
        try:
            for sub in ("tmp", "new", "cur"):
                (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _delivery_error("create Maildir", maildir, exc) from exc
        with self._lock:
            self._ready.add(maildir)

    def planned_receipt(self, destination: str, hint: str) -> str:
        """A unique Maildir file name (time, microseconds, pid, counter, host)."""
        now = time.time()
        sec, usec = int(now), int((now % 1) * 1_000_000)
        return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{self._hostname}"

    def begin(self, destination: str, receipt: str | None) -> MaildirDelivery:
        """Open a tmp/ file for one message."""
        maildir = self.maildir_for(destination)
        self._ensure(maildir)
        name = receipt or self.planned_receipt(destination, "")
        return MaildirDelivery(self, maildir, name)

    def _dirty(self) -> set[Path]:
        dirty: set[Path] | None = getattr(self._local, "dirty", None)
        if dirty is None:
            dirty = self._local.dirty = set()
        return dirty

    def mark_dirty(self, maildir: Path) -> None:
        """Note a Maildir whose new/ directory needs an fsync (per thread)."""
        self._dirty().add(maildir)

    def flush(self) -> None:
        """fsync the new/ directories this thread delivered to since its last flush."""
        dirty = self._dirty()
        while dirty:
            maildir = dirty.pop()
            path = maildir / "new"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                dirty.add(maildir)
                raise _delivery_error("sync", path, exc) from exc

    def was_delivered(self, destination: str, receipt: str) -> bool:
        """Whether the file is in new/ or cur/ (with any flags suffix)."""
        maildir = self.maildir_for(destination)
        if (maildir / "new" / receipt).exists():
            return True
        prefix = receipt + ":"
        try:
            with os.scandir(maildir / "cur") as entries:
                return any(e.name == receipt or e.name.startswith(prefix) for e in entries)
        except FileNotFoundError:
            return False
