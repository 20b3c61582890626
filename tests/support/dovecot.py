"""A private, real Dovecot (IMAP, POP3, LMTP) for tests, on loopback high ports.

`DovecotServer(root)` keeps its configuration, certificates and log in `root`, and its runtime
tree (sockets, state, a passwd-file per user, the users' homes with their Maildirs) where the
unprivileged mail user can reach it: `root/srv` when every ancestor of `root` is traversable by
others, otherwise a fresh `mailhaul-dovecot-*` directory in the temp dir (pytest's temp dirs are
0700 root), linked from `root/srv`. Dovecot's mail processes refuse to run as root, so the served
Maildirs belong to the system user `mailhaul-test` (created by scripts/install-test-deps.sh).

Needs root (to start Dovecot and to write Maildir files as the mail user).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import imaplib
import ipaddress
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.local_servers import (
    HOST,
    accepts,
    die_with_parent,
    free_ports,
    pid_alive,
    reachable_by_others,
    runtime_parent,
)

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
DOVEADM_BINARY = Path("/usr/bin/doveadm")
MAIL_USER = "mailhaul-test"
SEPARATOR = "/"
INSTALL_HINT = "run scripts/install-test-deps.sh (as root) to install Dovecot and its test user"

_RUNTIME_PREFIX = "mailhaul-dovecot-"
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes; Dovecot appends socket names to base_dir
_MAILDIR_FLAGS = frozenset("DFRST")  # draft, flagged, replied, seen, trashed (\Deleted)


class DovecotError(RuntimeError):
    """The test Dovecot could not be started, or did not behave as expected."""


@dataclass(frozen=True)
class Ports:
    imap: int  # plain, offers STARTTLS
    imaps: int  # implicit TLS
    pop3: int  # plain, offers STLS
    pop3s: int  # implicit TLS
    lmtp: int  # plain LMTP


@dataclass(frozen=True)
class StoredMessage:
    """One message as the server has it now (read over IMAP without side effects)."""

    uid: int
    raw: bytes
    flags: frozenset[str]  # IMAP flags, e.g. {"\\Seen"}

    @property
    def seen(self) -> bool:
        return r"\Seen" in self.flags

    @property
    def deleted(self) -> bool:
        """Flagged \\Deleted but not expunged yet: still on the server."""
        return r"\Deleted" in self.flags


@dataclass(frozen=True)
class _User:
    name: str
    password: str
    home: Path


class DovecotServer:
    """A Dovecot master of its own, started with `start()` and ended with `close()`."""

    def __init__(
        self,
        root: Path,
        *,
        mail_user: str = MAIL_USER,
        extra_config: str = "",
        introspection_url: str = "",
        cert_days: float = 30,
    ) -> None:
        """``introspection_url``: also take OAuth2 access tokens (XOAUTH2, OAUTHBEARER),
        checked by RFC 7662 introspection there (Dovecot's oauth2 passdb)."""
        self._root = Path(root).resolve()
        self._mail_user = mail_user
        self._extra_config = extra_config
        self._introspection_url = introspection_url
        self._cert_days = cert_days
        try:
            entry = pwd.getpwnam(mail_user)
        except KeyError:
            raise DovecotError(f"no system user {mail_user!r}: {INSTALL_HINT}") from None
        self._uid = entry.pw_uid
        self._gid = entry.pw_gid
        self._users: dict[str, _User] = {}
        self._ports: Ports | None = None
        self._runtime: Path | None = None
        self._runtime_is_external = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count()
        self._atexit_registered = False

    # --- properties --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def ports(self) -> Ports:
        if self._ports is None:
            raise DovecotError("the server has not been started")
        return self._ports

    @property
    def imap_port(self) -> int:
        return self.ports.imap

    @property
    def imaps_port(self) -> int:
        return self.ports.imaps

    @property
    def pop3_port(self) -> int:
        return self.ports.pop3

    @property
    def pop3s_port(self) -> int:
        return self.ports.pop3s

    @property
    def lmtp_port(self) -> int:
        return self.ports.lmtp

    @property
    def separator(self) -> str:
        """The IMAP hierarchy separator of the (only) namespace."""
        return SEPARATOR

    @property
    def root(self) -> Path:
        return self._root

    @property
    def ca_path(self) -> Path:
        """PEM of the test CA that signed the server certificate."""
        return self._root / "ca.pem"

    @property
    def cert_path(self) -> Path:
        return self._root / "cert.pem"

    @property
    def key_path(self) -> Path:
        return self._root / "key.pem"

    @property
    def config_path(self) -> Path:
        return self._root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self._root / "dovecot.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against the test CA."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start Dovecot (first call: prepare the tree, certificates and config; later calls:
        restart on the same ports with the same users and mail)."""
        if self.running:
            raise DovecotError("already running")
        if os.geteuid() != 0:
            raise DovecotError(
                "the test Dovecot needs root (it runs mail processes as another user)"
            )
        if not DOVECOT_BINARY.exists():
            raise DovecotError(f"{DOVECOT_BINARY} is missing: {INSTALL_HINT}")
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True
        first = self._runtime is None
        if first:
            _sweep_stale_runtimes()
            self._prepare()
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first and attempt > 0:
                self._ports = _free_ports()
            self._write_config()
            try:
                self._launch()
                return
            except DovecotError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise

    def stop(self, *, kill: bool = False) -> None:
        """Stop the Dovecot processes; users, mail and ports are kept for a `start()`.

        Graceful (SIGTERM, about a second) unless `kill`: SIGKILL at once, like a crash.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None and not kill:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_STOP_TIMEOUT)
        # The master is its own session and process group leader: end whatever is left in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        """Stop Dovecot and remove the runtime tree (homes and mail); logs stay in `root`."""
        self.stop()
        if self._atexit_registered:
            atexit.unregister(self.close)
            self._atexit_registered = False
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)
            if self._runtime_is_external:
                with contextlib.suppress(FileNotFoundError):
                    (self._root / "srv").unlink()
        self._users.clear()

    def __enter__(self) -> DovecotServer:
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
        for path in (self.log_path, self._root / "dovecot.stderr"):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "\n".join(parts) or "(Dovecot wrote no log)"

    # --- users and mail ----------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> Path:
        """Add a login (e.g. "alice@example.test") and return its home (with an empty INBOX)."""
        runtime = self._require_runtime()
        if not name or any(c in name for c in ":/\\\0\r\n\t ") or name in (".", ".."):
            raise ValueError(f"unusable user name: {name!r}")
        if name != name.lower():
            raise ValueError(f"user names must be lowercase (Dovecot lowercases logins): {name!r}")
        if any(c in password for c in ":\0\r\n"):
            raise ValueError("passwords must not contain ':' or line breaks")
        if name in self._users:
            raise ValueError(f"user {name!r} exists")
        home = runtime / "home" / name
        self._mkdir_owned(home, 0o700)
        self._ensure_maildir(home / "Maildir")
        # One passwd-file per user: Dovecot 2.3 stats a passwd-file at most once per second,
        # so a line appended to a shared file can stay unknown for up to a second.
        line = f"{name}:{{PLAIN}}{password}:{self._uid}:{self._gid}::{home}::\n"
        entry = runtime / "users" / name
        tmp = entry.with_name(f".{name}.tmp")
        tmp.write_text(line, encoding="utf-8")
        os.chmod(tmp, 0o644)  # read by Dovecot's auth process (user dovecot)
        os.rename(tmp, entry)
        self._users[name] = _User(name, password, home)
        return home

    def add_users(self, users: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Add many logins at once (benchmarks: 10,000 take a few seconds); returns them.

        Each is added as by `add_user` (a passwd-file of its own and an empty INBOX).
        """
        added = []
        for name, password in users:
            self.add_user(name, password)
            added.append((name, password))
        return added

    def new_mailbox(self, domain: str = "example.test") -> Mailbox:
        """Add a fresh user with a random name and password; return helpers bound to it."""
        user = f"u{secrets.token_hex(6)}@{domain}"
        password = secrets.token_urlsafe(12)
        home = self.add_user(user, password)
        return Mailbox(server=self, user=user, password=password, home=home)

    def password(self, user: str) -> str:
        return self._user(user).password

    def set_sieve(self, user: str, script: str) -> None:
        """Make ``script`` the user's active Sieve script (LMTP deliveries run it)."""
        path = self._user(user).home / ".dovecot.sieve"
        path.write_text(script)
        os.chown(path, self._uid, self._gid)

    def home(self, user: str) -> Path:
        return self._user(user).home

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """The Maildir++ directory of a folder ("INBOX", "Archive", "Archive/2024", ...)."""
        base = self._user(user).home / "Maildir"
        if folder.upper() == "INBOX":
            return base
        if not folder or folder.startswith(SEPARATOR) or folder.endswith(SEPARATOR):
            raise ValueError(f"unusable folder name: {folder!r}")
        if "." in folder:
            raise ValueError(f"'.' cannot be stored in a Maildir++ folder name: {folder!r}")
        return base / ("." + _imap_utf7(folder).replace(SEPARATOR, "."))

    def create_folder(self, user: str, folder: str) -> Path:
        """Create a folder (and its parents) on disk; Dovecot sees it on its next listing."""
        parts = folder.split(SEPARATOR)
        for i in range(1, len(parts) + 1):
            path = self.maildir(user, SEPARATOR.join(parts[:i]))
            self._ensure_maildir(path)
            marker = path / "maildirfolder"
            if not marker.exists():
                marker.touch()
                os.chown(marker, self._uid, self._gid)
        return self.maildir(user, folder)

    def deliver(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        seen: bool = False,
        *,
        flags: str | None = None,
    ) -> None:
        """Put a message into a folder by writing its Maildir file directly.

        Unseen messages go to `new/`; seen ones to `cur/` with `:2,S`. `flags` (Maildir letters:
        D draft, F flagged, R answered, S seen, T deleted) overrides `seen` and puts the file in
        `cur/` with exactly those flags.
        """
        if flags is None:
            flags = "S" if seen else None
        if flags is not None and any(c not in _MAILDIR_FLAGS for c in flags):
            raise ValueError(f"unknown Maildir flags {flags!r} (use letters of DFRST)")
        if folder.upper() == "INBOX":
            box = self.maildir(user, folder)
        else:
            box = self.create_folder(user, folder)
        now = time.time()
        unique = (
            f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}"
            f"Q{next(self._counter)}R{secrets.token_hex(4)}.mailhaul-test"
        )
        tmp = box / "tmp" / unique
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchown(fd, self._uid, self._gid)
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(raw)
        finally:
            os.close(fd)
        if flags is None:
            final = box / "new" / unique
        else:
            final = box / "cur" / f"{unique}:2,{''.join(sorted(set(flags)))}"
        os.rename(tmp, final)

    def list_messages(self, user: str, folder: str = "INBOX") -> list[StoredMessage]:
        """What the server holds in a folder now, in UID order (via IMAP EXAMINE, which changes
        nothing). Expunged messages are gone; ones flagged \\Deleted are still listed."""
        messages = []
        with self._imap(user) as imap:
            typ, data = imap.select(_quote(_imap_utf7(folder)), readonly=True)
            _check(typ, data, f"EXAMINE {folder}")
            if int(data[0] or b"0") == 0:
                return []
            typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            _check(typ, data, "UID FETCH")
            pending: tuple[bytes, bytes] | None = None
            for item in [*data, None]:
                if isinstance(item, tuple):
                    if pending is not None:
                        messages.append(_parse_fetch(*pending, b""))
                    pending = (item[0], item[1])
                elif pending is not None:
                    messages.append(_parse_fetch(*pending, item or b""))
                    pending = None
        return sorted(messages, key=lambda m: m.uid)

    def folders(self, user: str) -> dict[str, frozenset[str]]:
        """The user's folders as Dovecot lists them over IMAP (names decoded from modified
        UTF-7), each with its attributes in lower case."""
        found: dict[str, frozenset[str]] = {}
        with self._imap(user) as imap:
            typ, data = imap.list()
            lines: list[object] = list(data)
            _check(typ, lines, "LIST")
        for line in data:
            if not isinstance(line, bytes):
                continue
            match = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.+)$', line)
            assert match is not None, line
            name = match.group(2).decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            attributes = frozenset(a.lower() for a in match.group(1).decode().split())
            found[_imap_utf7_decode(name)] = attributes
        return found

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self._imap(user) as imap:
            typ, data = imap.status(_quote(_imap_utf7(folder)), "(UIDVALIDITY)")
            _check(typ, data, f"STATUS {folder}")
        match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
        if match is None:
            raise DovecotError(f"no UIDVALIDITY in {data!r}")
        return int(match.group(1))

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Make Dovecot give the folder a new UIDVALIDITY (and new UIDs) keeping its messages.

        Ends the user's sessions (`doveadm kick`), deletes the folder's `dovecot-uidlist` and
        index files and the mailbox list index, and returns the new UIDVALIDITY. Dovecot then
        rebuilds them from the message files, taking a UIDVALIDITY greater than any it gave
        before (from `dovecot-uidvalidity`). POP3 UIDLs (`%08Xu%08Xv`) change with it.
        """
        old = self.uidvalidity(user, folder)
        self.kick(user)
        box = self.maildir(user, folder)
        doomed = [box / "dovecot-uidlist", box / "dovecot-uidlist.lock"]
        doomed += box.glob("dovecot.index*")
        doomed += (self._user(user).home / "Maildir").glob("dovecot.list.index*")
        for path in doomed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        new = self.uidvalidity(user, folder)
        if new == old:
            raise DovecotError(f"UIDVALIDITY of {user} {folder} stayed {old} after the reset")
        return new

    def kick(self, user: str) -> None:
        """End all of a user's IMAP/POP3 sessions and wait until their processes are gone."""
        self._user(user)
        self._doveadm("kick", user, ok_codes=(0, 68))  # 68: nobody to kick
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not self._user_processes(user):
                return
            time.sleep(0.02)
        raise DovecotError(f"sessions of {user} still alive after doveadm kick")

    # --- internals ---------------------------------------------------------------------------

    def _user(self, user: str) -> _User:
        try:
            return self._users[user]
        except KeyError:
            raise KeyError(f"no such test user: {user!r}") from None

    def _require_runtime(self) -> Path:
        if self._runtime is None:
            raise DovecotError("start() the server first")
        return self._runtime

    def _mkdir_owned(self, path: Path, mode: int) -> None:
        path.mkdir(mode=mode, exist_ok=True)
        os.chown(path, self._uid, self._gid)
        os.chmod(path, mode)

    def _ensure_maildir(self, path: Path) -> None:
        self._mkdir_owned(path, 0o700)
        for sub in ("cur", "new", "tmp"):
            self._mkdir_owned(path / sub, 0o700)

    def _prepare(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        srv = self._root / "srv"
        if reachable_by_others(self._root) and len(str(srv)) < _MAX_UNIX_PATH - 40:
            srv.mkdir(mode=0o711)
            self._runtime_is_external = False
            runtime = srv
        else:
            runtime = Path(tempfile.mkdtemp(prefix=_RUNTIME_PREFIX, dir=runtime_parent()))
            (runtime / "owner").write_text(f"{os.getpid()}\n")
            srv.symlink_to(runtime)
            self._runtime_is_external = True
        os.chmod(runtime, 0o711)  # noqa: S103 - the mail user must traverse to its home
        for sub, mode in (("home", 0o711), ("state", 0o755), ("users", 0o755)):
            (runtime / sub).mkdir(mode=mode)
            os.chmod(runtime / sub, mode)
        self._runtime = runtime
        write_certificates(self.ca_path, self.cert_path, self.key_path, self._cert_days)
        self._ports = _free_ports()

    def _write_config(self) -> None:
        runtime = self._require_runtime()
        ports = self.ports
        dh = Path("/usr/share/dovecot/dh.pem")
        ssl_dh = f"ssl_dh = <{dh}\n" if dh.exists() else ""
        name = "mailhaul-test-" + runtime.name.removeprefix(_RUNTIME_PREFIX)
        passwd = runtime / "users" / "%u"
        conf = f"""\
# Written by tests/support/dovecot.py: a standalone test instance, loopback only.
instance_name = {name}
base_dir = {runtime}/run
state_dir = {runtime}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
protocols = imap pop3 lmtp
listen = {HOST}
hostname = localhost
verbose_proctitle = yes

ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}
{ssl_dh}ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self._introspection_url else ""}
auth_failure_delay = 0
auth_verbose = yes

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
{"  mechanisms = plain login" if self._introspection_url else ""}
}}
{self._oauth2_passdb(runtime)}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}

mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = {SEPARATOR}
  list = yes
  subscriptions = yes
  # special-use folders (RFC 6154), listed with their attribute once a test makes them
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Spam {{
    special_use = \\Junk
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox "Sent Items" {{
    special_use = \\Sent
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}
first_valid_uid = {self._uid}
last_valid_uid = {self._uid}
first_valid_gid = {self._gid}
last_valid_gid = {self._gid}
mail_fsync = never
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
postmaster_address = postmaster@example.test
# LMTP files local+Folder@domain into Folder (made if missing), and runs the user's Sieve
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
# a test's own settings (before the protocol blocks, which take $mail_plugins from here)
{self._extra_config}

protocol imap {{
  mail_max_userip_connections = 1000
}}
protocol pop3 {{
  mail_max_userip_connections = 1000
  pop3_uidl_format = %08Xu%08Xv
}}
protocol lmtp {{
  postmaster_address = postmaster@example.test
  mail_plugins = $mail_plugins sieve
}}

service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {ports.imap}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {ports.imaps}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {HOST}
    port = {ports.pop3}
  }}
  inet_listener pop3s {{
    address = {HOST}
    port = {ports.pop3s}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
}}
service lmtp {{
  inet_listener lmtp {{
    address = {HOST}
    port = {ports.lmtp}
  }}
}}
service imap {{
  process_limit = 1024
}}
service pop3 {{
  process_limit = 1024
}}
# no auth penalty: Dovecot would delay every later login from 127.0.0.1 by up to 15 s after a
# few wrong passwords, and the tests that try one share this server with the rest
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
        self.config_path.write_text(conf)
        os.chmod(self.config_path, 0o600)

    def _oauth2_passdb(self, runtime: Path) -> str:
        """The oauth2 passdb (with its own settings file) when tokens are taken."""
        if not self._introspection_url:
            return ""
        settings = runtime / "dovecot-oauth2.conf.ext"
        settings.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self._introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        os.chmod(settings, 0o644)
        return f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {settings}
}}
"""

    def _launch(self) -> None:
        runtime = self._require_runtime()
        stderr_path = self._root / "dovecot.stderr"
        with stderr_path.open("ab") as err:
            self._proc = subprocess.Popen(
                [str(DOVECOT_BINARY), "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # setsid: its own session and process group
                preexec_fn=die_with_parent,  # only calls prctl(2)
                cwd=runtime,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        pending = set(self.ports.__dict__.values())
        while pending:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise DovecotError(
                    f"dovecot exited with status {code} while starting\n{self.log_tail()}"
                )
            for port in sorted(pending):
                if accepts(port):
                    pending.discard(port)
            if pending and time.monotonic() > deadline:
                self.stop()
                raise DovecotError(
                    f"dovecot did not listen on ports {sorted(pending)} within "
                    f"{_START_TIMEOUT:.0f} s\n{self.log_tail()}"
                )
            if pending:
                time.sleep(0.02)

    def _doveadm(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> str:
        proc = subprocess.run(
            [str(DOVEADM_BINARY), "-c", str(self.config_path), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode not in ok_codes:
            raise DovecotError(
                f"doveadm {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def _user_processes(self, user: str) -> list[int]:
        """PIDs of this instance's mail processes serving `user` (from their proctitles)."""
        if self._proc is None:
            return []
        found = []
        marker = f"[{user} ".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) != self._proc.pid:
                    continue
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, ProcessLookupError):
                continue
            title = cmdline.split(b"\0")[0]
            if marker in title and re.search(rb"/(imap|pop3) \[", title):
                found.append(int(entry.name))
        return found

    @contextlib.contextmanager
    def _imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        password = self._user(user).password
        with imaplib.IMAP4(HOST, self.ports.imap, timeout=30) as imap:
            imap.login(user, password)
            yield imap


@dataclass(frozen=True)
class Mailbox:
    """A test user on a `DovecotServer`, with the server's helpers bound to it."""

    server: DovecotServer
    user: str
    password: str
    home: Path

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def ports(self) -> Ports:
        return self.server.ports

    def deliver(
        self, raw: bytes, folder: str = "INBOX", seen: bool = False, *, flags: str | None = None
    ) -> None:
        self.server.deliver(self.user, raw, folder, seen, flags=flags)

    def list_messages(self, folder: str = "INBOX") -> list[StoredMessage]:
        return self.server.list_messages(self.user, folder)

    def create_folder(self, folder: str) -> Path:
        return self.server.create_folder(self.user, folder)

    def folders(self) -> dict[str, frozenset[str]]:
        return self.server.folders(self.user)

    def maildir(self, folder: str = "INBOX") -> Path:
        return self.server.maildir(self.user, folder)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        return self.server.uidvalidity(self.user, folder)

    def reset_uidvalidity(self, folder: str = "INBOX") -> int:
        return self.server.reset_uidvalidity(self.user, folder)

    def kick(self) -> None:
        self.server.kick(self.user)

    def imap(self) -> contextlib.AbstractContextManager[imaplib.IMAP4]:
        """An IMAP session of this user, as another mail client would have (logged in)."""
        return self.server._imap(self.user)


# --- helpers ---------------------------------------------------------------------------------


def _free_ports(count: int = 5) -> Ports:
    """Distinct free TCP ports on the loopback address."""
    return Ports(*free_ports(count))


def _sweep_stale_runtimes() -> None:
    """Remove runtime trees left by test runs that were killed (their owner process is gone),
    ending any Dovecot of theirs that survived."""
    parent = Path(runtime_parent())
    for runtime in parent.glob(_RUNTIME_PREFIX + "*"):
        try:
            if runtime.is_symlink() or runtime.stat().st_uid != os.geteuid():
                continue
            owner = int((runtime / "owner").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if pid_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            master = int((runtime / "run" / "master.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{master}/cmdline").read_bytes()
            if b"dovecot" in cmdline and str(runtime).encode() in cmdline:
                os.killpg(master, signal.SIGKILL)
        shutil.rmtree(runtime, ignore_errors=True)


def write_certificates(
    ca_path: Path, cert_path: Path, key_path: Path, valid_days: float = 30
) -> None:
    """A test CA and a server certificate for localhost / 127.0.0.1 signed by it, both
    valid for ``valid_days`` more days."""
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=valid_days)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailhaul test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)


def _imap_utf7(name: str) -> str:
    """RFC 3501 modified UTF-7, as IMAP and Dovecot's Maildir++ names use it."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _imap_utf7_decode(name: str) -> str:
    """The inverse of `_imap_utf7` (written apart from mailhaul's own decoder)."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        if not body:
            return "&"
        raw = body.replace(",", "/")
        return base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-16-be")

    return re.sub(r"&([^-]*)-", one, name)


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: list[bytes | None] | list[object], what: str) -> None:
    if typ != "OK":
        raise DovecotError(f"IMAP {what} failed: {typ} {data!r}")


def _parse_fetch(meta: bytes, body: bytes, trailer: bytes) -> StoredMessage:
    text = meta + b" " + trailer
    uid = re.search(rb"\bUID (\d+)", text)
    flags = re.search(rb"\bFLAGS \(([^)]*)\)", text)
    if uid is None or flags is None:
        raise DovecotError(f"unexpected FETCH response: {meta!r} ... {trailer!r}")
    # \Recent belongs to a session, not to the message: leave it out.
    names = frozenset(f.decode() for f in flags.group(1).split()) - {r"\Recent"}
    return StoredMessage(uid=int(uid.group(1)), raw=body, flags=names)
