"""Private, real GNU Mailutils servers (imap4d, pop3d) for tests, on loopback high ports.

A second real IMAP/POP3 server beside Dovecot, one that keeps its mail in mbox files and
behaves as mail administrators meet it: it serves its mbox bookkeeping headers (``X-IMAPbase:
<UIDVALIDITY> <UIDNEXT>`` on a folder's first message, ``X-UID``, ``X-UIDL``, ``Status``) as
part of the message, rewrites the mbox between sessions, has no UIDPLUS, answers ``[IN-USE]``
while another POP3 session has the mailbox open, and gives a folder a new UIDVALIDITY when it
has been emptied.

`MailutilsServer(root)` starts one imap4d and one pop3d (``--no-site-config
--config-file=…``), each with a plain port offering STARTTLS/STLS and an implicit-TLS port,
with a certificate for localhost / 127.0.0.1 signed by a test CA (`ca_path`). Logins are
``local@domain`` with a password (Mailutils' ``virtdomain`` password files). A user's INBOX is
the mbox file ``<home>/INBOX``, other folders are mbox files under the home (``Archive``,
``Lists/python``: the separator is ``/``).

Both daemons run as an unprivileged user: the system user ``mailhaul-test`` (created by
scripts/install-test-deps.sh) with the group ``mail`` when the tests run as root, else the
user running them. The
runtime tree (configuration, password files, homes) is a fresh ``mailhaul-mailutils-*``
directory in the temp dir that user can reach, linked from ``root/srv``; the daemons' logs stay
in ``root``.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import imaplib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from support.dovecot import write_certificates
from support.local_servers import HOST, accepts, die_with_parent, free_ports, runtime_parent

IMAP4D_BINARY = Path("/usr/sbin/imap4d")
POP3D_BINARY = Path("/usr/sbin/pop3d")
MAIL_USER = "mailhaul-test"
SEPARATOR = "/"
INSTALL_HINT = (
    "run scripts/install-test-deps.sh (as root) to install mailutils-imap4d and mailutils-pop3d"
)
# Header fields Mailutils adds to a message or rewrites for its own bookkeeping.
BOOKKEEPING_FIELDS = frozenset({"x-imapbase", "x-uid", "x-uidl", "status", "x-status"})

_RUNTIME_PREFIX = "mailhaul-mailutils-"
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0
_LOCK_TIMEOUT = 20.0
_ENVELOPE = b"From sender@example.net Thu Dec  3 08:00:00 2026\n"


def binaries_missing() -> list[Path]:
    """The Mailutils server binaries that are not installed."""
    return [path for path in (IMAP4D_BINARY, POP3D_BINARY) if not path.exists()]


def without_bookkeeping(raw: bytes) -> bytes:
    """``raw`` with LF line ends and without the header fields Mailutils adds for itself."""
    text = raw.replace(b"\r\n", b"\n")
    head, sep, body = text.partition(b"\n\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a continuation of the field before
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        dropping = name in BOOKKEEPING_FIELDS
        if not dropping:
            kept.append(line)
    return b"\n".join(kept) + sep + body


class MailutilsError(RuntimeError):
    """The test Mailutils servers could not be started, or did not behave as expected."""


@dataclass(frozen=True)
class Ports:
    imap: int  # plain, offers STARTTLS
    imaps: int  # implicit TLS
    pop3: int  # plain, offers STLS
    pop3s: int  # implicit TLS


@dataclass(frozen=True)
class _User:
    name: str
    password: str
    home: Path


class MailutilsServer:
    """An imap4d and a pop3d of their own, started with `start()` and ended with `close()`."""

    def __init__(self, root: Path, *, mail_user: str = MAIL_USER) -> None:
        self._root = Path(root).resolve()
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(mail_user)
            except KeyError:
                raise MailutilsError(f"no system user {mail_user!r}: {INSTALL_HINT}") from None
            # pop3d exits unless it may switch to the group `mail` (spool access): run both
            # daemons with that as their group, so the switch is no change at all.
            self._uid, self._gid = entry.pw_uid, _mail_gid(entry.pw_gid)
        else:  # not root: the daemons run as whoever runs the tests
            self._uid, self._gid = os.geteuid(), os.getegid()
        self._users: dict[str, _User] = {}
        self._ports: Ports | None = None
        self._runtime: Path | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._counter = itertools.count()

    # --- properties --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            raise MailutilsError("the servers have not been started")
        return self._ports

    @property
    def separator(self) -> str:
        return SEPARATOR

    @property
    def root(self) -> Path:
        return self._root

    @property
    def ca_path(self) -> Path:
        """PEM of the test CA that signed the servers' certificate."""
        return self._root / "ca.pem"

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the servers against the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start imap4d and pop3d (the first call also prepares the tree and certificates)."""
        missing = binaries_missing()
        if missing:
            raise MailutilsError(f"{', '.join(map(str, missing))} missing: {INSTALL_HINT}")
        if self.running:
            raise MailutilsError("already running")
        if self._runtime is None:
            atexit.register(self.close)
            _sweep_stale_runtimes()
            self._prepare()
        for attempt in range(3):
            self._write_configs()
            try:
                self._launch()
                return
            except MailutilsError:
                self.stop()
                if attempt == 2:
                    raise
                self._ports = _free_ports()  # a port was taken meanwhile: try others

    def stop(self) -> None:
        """Stop both daemons and their sessions; users and mail are kept."""
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=_STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # sessions left in its process group
            proc.wait()

    def close(self) -> None:
        """Stop the daemons and remove the runtime tree; logs stay in `root`."""
        self.stop()
        atexit.unregister(self.close)
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self._root / "srv").unlink()
        self._users.clear()

    def __enter__(self) -> MailutilsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("imap4d", "pop3d"):
            path = self._root / f"{name}.log"
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or "(Mailutils wrote no log)"

    # --- users and mail ----------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> Path:
        """Add a login ``local@domain`` and return its home (with an empty INBOX)."""
        runtime = self._require_runtime()
        local, at, domain = name.partition("@")
        if not at or not re.fullmatch(r"[a-z0-9._-]+", local) or not domain:
            raise ValueError(f"unusable user name (want lowercase local@domain): {name!r}")
        if not re.fullmatch(r"[a-z0-9.-]+", domain) or any(c in password for c in ":\n\0"):
            raise ValueError(f"unusable domain or password for {name!r}")
        if any(u.name.partition("@")[0] == local for u in self._users.values()):
            raise ValueError(f"a user with the local part {local!r} exists")  # one spool
        home = runtime / "home" / local
        self._mkdir_owned(home, 0o700)
        self._write_owned(home / "INBOX", b"")
        hashed = (
            subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"],
                input=password.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        line = f"{local}:{hashed}:{self._uid}:{self._gid}::{home}:/bin/false\n"
        with (runtime / "passwd" / domain).open("a") as passwd:
            passwd.write(line)
        self._users[name] = _User(name, password, home)
        return home

    def new_mailbox(self, domain: str = "example.test") -> MailutilsMailbox:
        """Add a fresh user with a random name and password; return helpers bound to it."""
        user = f"u{secrets.token_hex(6)}@{domain}"
        password = secrets.token_urlsafe(12)
        home = self.add_user(user, password)
        return MailutilsMailbox(server=self, user=user, password=password, home=home)

    def mbox_path(self, user: str, folder: str = "INBOX") -> Path:
        """The mbox file of a folder ("INBOX", "Archive", "Lists/python", …)."""
        home = self._user(user).home
        if folder.upper() == "INBOX":
            return home / "INBOX"
        parts = folder.split(SEPARATOR)
        if any(part in ("", ".", "..") or part.upper() == "INBOX" for part in parts):
            raise ValueError(f"unusable folder name: {folder!r}")
        return home.joinpath(*parts)

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Append a message to a folder's mbox (creating the folder), as a local MDA would.

        The message is stored with LF line ends after an mbox ``From `` line, under
        Mailutils' dot-lock. A message line starting with ``From `` would need mbox quoting,
        which Mailutils may or may not undo when serving it: such messages are refused.
        """
        text = raw.replace(b"\r\n", b"\n")
        if text.startswith(b"From ") or b"\nFrom " in text:
            raise ValueError("a line starting with 'From ' would be quoted in the mbox")
        if not text.endswith(b"\n"):
            text += b"\n"
        path = self.mbox_path(user, folder)
        for parent in reversed(path.relative_to(self._user(user).home).parents):
            if parent != Path("."):
                self._mkdir_owned(self._user(user).home / parent, 0o700)
        with self._dotlock(path):
            if not path.exists():
                self._write_owned(path, b"")
            with path.open("ab") as mbox:
                mbox.write(_ENVELOPE + text + b"\n")

    def fetch_all(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The messages of a folder as imap4d serves them now, in UID order (EXAMINE)."""
        with self.imap(user) as imap:
            typ, data = imap.select(_quote(folder), readonly=True)
            _check(typ, data, f"EXAMINE {folder}")
            if int(data[0] or b"0") == 0:
                return []
            typ, fetched = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
            _check(typ, fetched, "UID FETCH")
        return [bytes(item[1]) for item in fetched if isinstance(item, tuple)]

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.imap(user) as imap:
            typ, data = imap.status(_quote(folder), "(UIDVALIDITY)")
            _check(typ, data, f"STATUS {folder}")
        match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        if match is None:
            raise MailutilsError(f"no UIDVALIDITY in {data!r}")
        return int(match.group(1))

    def look_at(self, user: str, folder: str = "INBOX") -> None:
        """Open the folder read-write and leave, as a mail client would: imap4d then writes
        its bookkeeping headers into the mbox (``X-IMAPbase``, ``X-UID``, ``Status``)."""
        with self.imap(user) as imap:
            typ, data = imap.select(_quote(folder))
            _check(typ, data, f"SELECT {folder}")
            imap.close()

    def empty(self, user: str, folder: str = "INBOX") -> int:
        """Delete every message of a folder over IMAP, as a mail client would, and return its
        UIDVALIDITY before; the folder gets a new one (and new POP3 UIDLs) when mail arrives
        again."""
        called = time.time()
        old = self.uidvalidity(user, folder)
        with self.imap(user) as imap:
            typ, data = imap.select(_quote(folder))
            _check(typ, data, f"SELECT {folder}")
            if int(data[0] or b"0"):
                typ, data = imap.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                _check(typ, data, "STORE")
                typ, data = imap.expunge()
                _check(typ, data, "EXPUNGE")
            imap.close()
        # imap4d takes a new UIDVALIDITY from the clock, and pop3d's UIDLs (digest.time.uid)
        # have the time in them: let the second change so both differ from what a client
        # saw before this call (in the same second pop3d renumbers only some messages).
        while int(time.time()) <= max(old, int(called)):
            time.sleep(0.05)
        return old

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        """An IMAP session of this user, as another mail client would have (logged in)."""
        password = self._user(user).password
        with imaplib.IMAP4(HOST, self.ports.imap, timeout=30) as imap:
            imap.login(user, password)
            yield imap

    # --- internals ---------------------------------------------------------------------------

    def _user(self, user: str) -> _User:
        try:
            return self._users[user]
        except KeyError:
            raise KeyError(f"no such test user: {user!r}") from None

    def _require_runtime(self) -> Path:
        if self._runtime is None:
            raise MailutilsError("start() the servers first")
        return self._runtime

    def _mkdir_owned(self, path: Path, mode: int) -> None:
        path.mkdir(mode=mode, exist_ok=True)
        os.chown(path, self._uid, self._gid)
        os.chmod(path, mode)

    def _write_owned(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchown(fd, self._uid, self._gid)
            os.write(fd, data)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _dotlock(self, path: Path) -> Iterator[None]:
        """Mailutils' default mbox lock: the file ``<mbox>.lock``, created exclusively."""
        lock = path.with_name(path.name + ".lock")
        deadline = time.monotonic() + _LOCK_TIMEOUT
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise MailutilsError(f"{lock} held for {_LOCK_TIMEOUT:.0f} s") from None
                time.sleep(0.02)
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            break
        try:
            yield
        finally:
            lock.unlink()

    def _prepare(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        runtime = Path(tempfile.mkdtemp(prefix=_RUNTIME_PREFIX, dir=runtime_parent()))
        (runtime / "owner").write_text(f"{os.getpid()}\n")
        os.chmod(runtime, 0o711)  # noqa: S103 - the mail user must traverse to its files
        srv = self._root / "srv"
        with contextlib.suppress(FileNotFoundError):
            srv.unlink()
        srv.symlink_to(runtime)
        self._runtime = runtime
        for sub in ("home", "passwd", "run", "tls"):
            self._mkdir_owned(runtime / sub, 0o700 if sub == "tls" else 0o755)
        write_certificates(self.ca_path, runtime / "tls" / "cert.pem", runtime / "tls" / "key.pem")
        for name in ("cert.pem", "key.pem"):
            os.chown(runtime / "tls" / name, self._uid, self._gid)
            os.chmod(runtime / "tls" / name, 0o600)
        self._ports = _free_ports()

    def _write_configs(self) -> None:
        runtime = self._require_runtime()
        ports = self.ports
        common = f"""\
# Written by tests/support/mailutils.py: a private test instance, loopback only.
logging {{ syslog false; }};
auth {{ authentication generic; authorization virtdomain; }};
virtdomain {{ passwd-dir "{runtime}/passwd"; }};
mailbox {{ mailbox-pattern "{runtime}/home/${{user}}/INBOX"; mailbox-type mbox; }};
tcp-wrappers {{ enable false; }};
gsasl {{ enable false; }};
tls {{
  ssl-certificate-file "{runtime}/tls/cert.pem";
  ssl-key-file "{runtime}/tls/key.pem";
}};
max-children 64;
"""
        for name, plain, implicit in (
            ("imap4d", ports.imap, ports.imaps),
            ("pop3d", ports.pop3, ports.pop3s),
        ):
            conf = common + (
                f'pidfile "{runtime}/run/{name}.pid";\n'
                f"server {HOST}:{plain} {{ tls-mode ondemand; }};\n"
                f"server {HOST}:{implicit} {{ tls-mode connection; }};\n"
            )
            path = runtime / f"{name}.conf"
            path.write_text(conf)
            os.chmod(path, 0o644)

    def _launch(self) -> None:
        runtime = self._require_runtime()
        user: int | None = self._uid if os.geteuid() == 0 else None
        group: int | None = self._gid if os.geteuid() == 0 else None
        for name, binary, ports in (
            ("imap4d", IMAP4D_BINARY, (self.ports.imap, self.ports.imaps)),
            ("pop3d", POP3D_BINARY, (self.ports.pop3, self.ports.pop3s)),
        ):
            with (self._root / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(
                    [
                        str(binary),
                        "--no-site-config",
                        f"--config-file={runtime}/{name}.conf",
                        "--daemon",
                        "--foreground",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    preexec_fn=die_with_parent,  # only calls prctl(2)
                    cwd=runtime,
                    user=user,
                    group=group,
                    extra_groups=[] if user is not None else None,
                )
            self._procs.append(proc)
            self._wait_listening(name, proc, ports)

    def _wait_listening(
        self, name: str, proc: subprocess.Popen[bytes], ports: tuple[int, ...]
    ) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        pending = set(ports)
        while pending:
            if proc.poll() is not None:
                raise MailutilsError(
                    f"{name} exited with status {proc.returncode} while starting\n{self.log_tail()}"
                )
            pending = {port for port in pending if not accepts(port)}
            if pending and time.monotonic() > deadline:
                raise MailutilsError(
                    f"{name} did not listen on {sorted(pending)} within {_START_TIMEOUT:.0f} s"
                    f"\n{self.log_tail()}"
                )
            if pending:
                time.sleep(0.02)


@dataclass(frozen=True)
class MailutilsMailbox:
    """A test user on a `MailutilsServer`, with the server's helpers bound to it."""

    server: MailutilsServer
    user: str
    password: str
    home: Path

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def ports(self) -> Ports:
        return self.server.ports

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        self.server.deliver(self.user, raw, folder)

    def fetch_all(self, folder: str = "INBOX") -> list[bytes]:
        return self.server.fetch_all(self.user, folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        return self.server.uidvalidity(self.user, folder)

    def look_at(self, folder: str = "INBOX") -> None:
        self.server.look_at(self.user, folder)

    def empty(self, folder: str = "INBOX") -> int:
        return self.server.empty(self.user, folder)

    def mbox_path(self, folder: str = "INBOX") -> Path:
        return self.server.mbox_path(self.user, folder)

    def imap(self) -> contextlib.AbstractContextManager[imaplib.IMAP4]:
        return self.server.imap(self.user)


# --- helpers ---------------------------------------------------------------------------------


def _mail_gid(default: int) -> int:
    try:
        return grp.getgrnam("mail").gr_gid
    except KeyError:
        return default


def _free_ports(count: int = 4) -> Ports:
    """Distinct free TCP ports on the loopback address."""
    return Ports(*free_ports(count))


def _sweep_stale_runtimes() -> None:
    """Remove runtime trees of killed test runs (their owner process is gone)."""
    for runtime in Path(runtime_parent()).glob(_RUNTIME_PREFIX + "*"):
        try:
            if runtime.is_symlink() or runtime.stat().st_uid != os.geteuid():
                continue
            owner = int((runtime / "owner").read_text().split()[0])
            os.kill(owner, 0)
        except ProcessLookupError:
            for name in ("imap4d", "pop3d"):
                with contextlib.suppress(OSError, ValueError):
                    pid = int((runtime / "run" / f"{name}.pid").read_text().split()[0])
                    if str(runtime).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.killpg(pid, signal.SIGKILL)
            shutil.rmtree(runtime, ignore_errors=True)
        except (OSError, ValueError, IndexError):
            continue


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: list[bytes | None] | list[object], what: str) -> None:
    if typ != "OK":
        raise MailutilsError(f"IMAP {what} failed: {typ} {data!r}")
