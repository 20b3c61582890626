"""Maildir delivery: tmp/ → fsync → new/, one Maildir per destination address.

Every folder it creates (the Maildir, tmp/new/cur, and missing parents of a
``delivery.maildir_path`` outside the home) is 0700, whatever the umask.

Messages are written byte for byte as the server sent them, except that CRLF line ends
become LF, as Maildir requires. ``commit()`` finishes a file in tmp/; ``flush()`` then
fsyncs every file of the batch (in parallel, so the file system can group the journal
commits), renames them into new/ and fsyncs the new/ directories. A file is never in
new/ before it is durable. The unique file name is chosen before delivery and recorded
as the receipt, so a run that crashed between delivering and recording can later find
out whether the file made it (``was_delivered``). What waits for ``flush()`` belongs to
the run's ``MaildirSession``; closing the session removes what was never flushed.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.adapters.sinks.transforms import CrlfToLf
from mailhaul.domain.addresses import normalise_address, split_address
from mailhaul.domain.errors import ConfigError, TemporaryDeliveryError
from mailhaul.domain.imap_utf7 import encode_mailbox

if TYPE_CHECKING:
    from mailhaul.settings_keys import DeliverySettings

_counter = itertools.count()
FSYNC_THREADS = 16
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _fsync_pool() -> ThreadPoolExecutor:
    global _pool  # one pool for the process, made on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="fsync")
        return _pool


def _safe_hostname() -> str:
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072") or "localhost"


def _delivery_error(action: str, path: Path | str, exc: OSError) -> TemporaryDeliveryError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "disk full (or quota exceeded)"
    else:
        reason = exc.strerror or str(exc)
    return TemporaryDeliveryError(f"cannot {action} {path}: {reason}")


def _fsync_path(fd: int, path: str) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise _delivery_error("sync", path, exc) from exc


@dataclass
class _Finished:
    """A message complete in tmp/, waiting for the batch's flush."""

    fd: int
    maildir: Path
    tmp_path: str
    new_path: str


class MaildirDelivery:
    """One message being written into a Maildir's tmp/."""

    def __init__(self, session: MaildirSession, maildir: Path, name: str) -> None:
        self._session = session
        self._maildir = maildir
        self._name = name
        base = str(maildir)
        self._tmp = os.path.join(base, "tmp", name)
        self._new = os.path.join(base, "new", name)
        try:
            self._fd: int | None = os.open(
                self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise _delivery_error("create", self._tmp, exc) from exc
        self._lf = CrlfToLf()

    def write(self, chunk: bytes) -> None:
        """Append a chunk, turning CRLF into LF (a CR split from its LF is carried over)."""
        self._write_raw(self._lf.feed(chunk))

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
        """Finish the file in tmp/; the session's flush() makes it durable and moves it to new/."""
        if tail := self._lf.finish():
            self._write_raw(tail)
        assert self._fd is not None
        fd, self._fd = self._fd, None
        self._session.finished(_Finished(fd, self._maildir, self._tmp, self._new))
        return self._name

    def abort(self) -> None:
        """Remove the partial file; never raises."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)


class MaildirSink:
    """Delivers into ``path_template`` filled with {home}, {address}, {domain}, {local}."""

    def __init__(self, path_template: str, home: Path) -> None:
        self.path_template = path_template
        self.home = home
        self._ready: set[Path] = set()
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._hostname = _safe_hostname()

    def maildir_for(self, destination: str) -> Path:
        """The Maildir path of a destination address (in lower case: one person, one Maildir)."""
        cached = self._paths.get(destination)
        if cached is not None:
            return cached
        path = self._fill(*split_address(normalise_address(destination)))
        with self._lock:
            self._paths[destination] = path
        return path

    def _fill(self, local: str, domain: str) -> Path:
        try:
            path = self.path_template.format(
                home=self.home, address=f"{local}@{domain}", domain=domain, local=local
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"delivery.maildir_path {self.path_template!r} is not a valid template: {exc}"
            ) from exc
        return Path(path)

    def _maildirs_of(self, destination: str) -> list[Path]:
        """Where a receipt for ``destination`` may be: its Maildir, and the one named in the
        case it was recorded in, if that differs (a record from before addresses were kept
        in lower case, whose file may sit in a Maildir such as ``.../Alice``)."""
        maildir = self.maildir_for(destination)
        as_recorded = self._fill(*split_address(destination))
        return [maildir] if as_recorded == maildir else [maildir, as_recorded]

    def ensure(self, maildir: Path) -> None:
        """Create the Maildir's tmp/, new/ and cur/ (0700) unless done already."""
        if maildir in self._ready:
            return
        try:
            for sub in ("tmp", "new", "cur"):
                make_private_dirs(maildir / sub)
        except OSError as exc:
            raise _delivery_error("create Maildir", maildir, exc) from exc
        with self._lock:
            self._ready.add(maildir)

    def files_folders(self, destination: str) -> bool:
        """Always: Maildir++ subfolders."""
        return True

    def ensure_folder(self, maildir: Path, folder: str) -> Path:
        """The Maildir++ subfolder of ``maildir`` for ``folder`` (levels joined by ``/``:
        ``Lists/python`` is ``.Lists.python``, each level in modified UTF-7 as Dovecot and
        Courier store names), made with its ``maildirfolder`` marker unless it exists."""
        sub = maildir / maildir_folder_name(folder)
        if sub not in self._ready:
            self.ensure(sub)
            try:
                (sub / "maildirfolder").touch(mode=0o600, exist_ok=True)
            except OSError as exc:
                raise _delivery_error("create Maildir folder", sub, exc) from exc
        return sub

    def planned_receipt(self, destination: str, hint: str) -> str:
        """A unique Maildir file name (time, microseconds, pid, counter, host)."""
        now = time.time()
        sec, usec = int(now), int((now % 1) * 1_000_000)
        return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}.{self._hostname}"

    def open_session(self, account_label: str) -> MaildirSession:
        """One run's deliveries (the label is not used: a Maildir has no ``{account}``)."""
        return MaildirSession(self)

    def close(self) -> None:
        """Nothing to let go of: sessions hold the files waiting for their flush."""

    def was_delivered(self, destination: str, receipt: str) -> bool:
        """Whether the file is in new/ or cur/ (with any flags suffix).

        A leftover in tmp/ (a crash before the batch was made durable) is not delivered;
        it is removed here, since the caller will fetch the message again.
        """
        maildirs = self._maildirs_of(destination)
        if any(_holds(maildir, receipt) for maildir in maildirs):
            return True
        if any(_holds(sub, receipt) for maildir in maildirs for sub in _folders_of(maildir)):
            return True  # filed into a folder (spam into .Junk)
        for maildir in maildirs:
            for where in (maildir, *_folders_of(maildir)):
                with contextlib.suppress(OSError):
                    (where / "tmp" / receipt).unlink(missing_ok=True)
        return False


class MaildirSession:
    """One run's deliveries into the Maildirs: the messages waiting for ``flush()``."""

    def __init__(self, sink: MaildirSink) -> None:
        self._sink = sink
        self._waiting: list[_Finished] = []

    def planned_receipt(self, destination: str, hint: str) -> str:
        """A unique Maildir file name (see ``MaildirSink.planned_receipt``)."""
        return self._sink.planned_receipt(destination, hint)

    def begin(
        self, destination: str, receipt: str | None, folder: str | None = None
    ) -> MaildirDelivery:
        """Open a tmp/ file for one message (in the Maildir++ subfolder ``.folder``)."""
        sink = self._sink
        maildir = sink.maildir_for(destination)
        sink.ensure(maildir)
        if folder:
            maildir = sink.ensure_folder(maildir, folder)
        name = receipt or sink.planned_receipt(destination, "")
        return MaildirDelivery(self, maildir, name)

    def finished(self, message: _Finished) -> None:
        """Note a message complete in tmp/, for the next flush()."""
        self._waiting.append(message)

    def flush(self) -> None:
        """fsync the finished messages, move them into new/, fsync new/.

        If any of them cannot be made durable, none is moved: all are removed from tmp/
        and a TemporaryDeliveryError says why (the messages stay on the server).
        """
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        try:
            results = _fsync_pool().map(lambda m: _fsync_path(m.fd, m.tmp_path), batch)
            list(results)
        except TemporaryDeliveryError:
            _discard(batch)
            raise
        for message in batch:
            with contextlib.suppress(OSError):
                os.close(message.fd)
        moved: set[Path] = set()
        try:
            for message in batch:
                os.rename(message.tmp_path, message.new_path)
                moved.add(message.maildir)
            for maildir in moved:
                fd = os.open(maildir / "new", os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise _delivery_error("move into new/ of", batch[0].maildir, exc) from exc

    def was_delivered(self, destination: str, receipt: str) -> bool:
        """See ``MaildirSink.was_delivered``."""
        return self._sink.was_delivered(destination, receipt)

    def close(self) -> None:
        """Remove from tmp/ what was committed but never flushed; never raises."""
        batch, self._waiting = self._waiting, []
        _discard(batch)


def _discard(batch: list[_Finished]) -> None:
    for message in batch:
        with contextlib.suppress(OSError):
            os.close(message.fd)
        with contextlib.suppress(OSError):
            os.unlink(message.tmp_path)


def maildir_folder_name(folder: str) -> str:
    """The Maildir++ directory name of a local folder (``Lists/python`` ->
    ``.Lists.python``, ``Entwürfe`` -> ``.Entw&APw-rfe``), or a ConfigError."""
    levels = folder.split("/")
    encoded = [encode_mailbox(level) for level in levels if level]
    if len(encoded) != len(levels) or any(
        level in (".", "..") or "." in level or "/" in level or level.startswith("~")
        for level in encoded
    ):
        raise ConfigError(f"{folder!r} is not a folder name mailhaul files mail into")
    return "." + ".".join(encoded)


def _folders_of(maildir: Path) -> list[Path]:
    """The Maildir++ subfolders of a Maildir (``.Junk``, ``.Sent``…)."""
    try:
        with os.scandir(maildir) as entries:
            return [Path(e.path) for e in entries if e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []


def _holds(maildir: Path, receipt: str) -> bool:
    """Whether the Maildir has the file in new/, or in cur/ (with any flags suffix)."""
    if (maildir / "new" / receipt).exists():
        return True
    prefix = receipt + ":"
    try:
        with os.scandir(maildir / "cur") as entries:
            return any(e.name == receipt or e.name.startswith(prefix) for e in entries)
    except FileNotFoundError:
        return False


def sink_from_settings(delivery: DeliverySettings, home: Path) -> MaildirSink:
    """The sink of ``method = "maildir"``: ``maildir_path`` filled in per destination."""
    return MaildirSink(delivery.maildir_path, home)
