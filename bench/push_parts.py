"""The parts of the push benchmark (bench/push.py) that are not mailhaul: Dovecot's settings for
thousands of idle IMAP sessions, dropping mail into a source mailbox and waiting until it is in
a destination Maildir, fetchmail in IDLE mode, and the figures taken from /proc."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from peers import FETCHMAIL, _q

# Dovecot holds an IMAP session that sits in IDLE for `imap_hibernate_timeout` in the one
# imap-hibernate process instead of an imap process of its own (doc.dovecot.org,
# "Hibernation"). imap processes run as the mail user and hand their client over through the
# imap-hibernate socket (group dovecot: extra_groups), and get it back through imap-master.
# The login process keeps running for TLS clients (it proxies), so it takes many clients per
# process (high-performance mode: service_count = 0, which the test config already sets).
# The test config's `service imap { process_limit = 1024 }` stays: hibernated sessions hold no
# imap process, so only the sessions busy at the moment (and the keepalives) need one.
HIBERNATE_CONFIG = """\
imap_hibernate_timeout = 5s
default_client_limit = {clients}
default_process_limit = {processes}
service imap {{
  unix_listener imap-master {{
    user = $default_internal_user
  }}
  extra_groups = $default_internal_group
  client_limit = 1
}}
service imap-hibernate {{
  unix_listener imap-hibernate {{
    mode = 0660
    group = $default_internal_group
  }}
  client_limit = {clients}
}}
service imap-login {{
  client_limit = {clients}
  process_min_avail = 2
}}
service anvil {{
  client_limit = {clients}
}}
service auth {{
  client_limit = {clients}
}}
"""


def hibernate_config(accounts: int) -> str:
    """Dovecot settings for `accounts` IDLE sessions (plus the benchmark's own logins)."""
    clients = max(1000, 3 * accounts + 500)
    return HIBERNATE_CONFIG.format(clients=clients, processes=300)


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it: serve, Dovecot)."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


def raise_inotify_instances(wanted: int) -> int | None:
    """Let one user hold `wanted` inotify instances; returns the old limit to restore (None
    if it was high enough already).

    Each IMAP session of Dovecot's (hibernated or not) keeps an inotify instance on its
    Maildir, all as the one mail user; past the limit (128 by default) Dovecot logs "Inotify
    instance limit … exceeded, disabling", does not hibernate the session and notices new mail
    only every `mailbox_idle_check_interval` (30 s).
    """
    old = int(INOTIFY_INSTANCES.read_text())
    if old >= wanted:
        return None
    INOTIFY_INSTANCES.write_text(f"{wanted}\n")
    return old


def restore_inotify_instances(old: int | None) -> None:
    if old is not None:
        with contextlib.suppress(OSError):
            INOTIFY_INSTANCES.write_text(f"{old}\n")


def drop_message(user: str, k: int) -> bytes:
    """A small message (about 2 KB) with a Message-ID the harness can find again."""
    body = "".join(f"line {n} of a message dropped by the push benchmark\r\n" for n in range(40))
    return (
        f"From: sender{k}@example.net\r\nTo: {user}\r\nSubject: push drop {k}\r\n"
        f"Message-ID: <push-{k}-{secrets.token_hex(6)}@example.net>\r\n"
        f"Date: Fri, 4 Dec 2026 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


def count_new(maildir: Path) -> int:
    """Files in a Maildir's new/ (0 while it does not exist yet)."""
    try:
        return sum(1 for _ in os.scandir(maildir / "new"))
    except FileNotFoundError:
        return 0


@dataclass
class Pending:
    """A drop on its way: where it must appear, and when it was made to appear at the source."""

    dest: Path  # the destination Maildir
    before: int  # files in dest/new before the drop
    arrived: float  # time.time() just before the source's file is written (tmp/, then new/)
    delivered: float | None = None


def wait_delivered(pending: Iterable[Pending], timeout: float, step: float = 0.005) -> int:
    """Poll the destinations' new/ every `step` s until each holds one more file, or `timeout`
    is over; returns how many arrived. The delivery time is when the harness saw the file."""
    left = [p for p in pending if p.delivered is None]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        now = time.time()
        still = []
        for p in left:
            if count_new(p.dest) > p.before:
                p.delivered = now
            else:
                still.append(p)
        left = still
        if left:
            time.sleep(step)
    return sum(1 for p in pending if p.delivered is not None)


def latencies(done: Iterable[Pending]) -> list[float]:
    return sorted(p.delivered - p.arrived for p in done if p.delivered is not None)


# --- fetchmail in IDLE mode, one process per account ---------------------------------------


@dataclass(frozen=True)
class IdlePeer:
    """One fetchmail process's account: where it connects, where it delivers."""

    home: Path
    port: int
    user: str
    password: str
    maildir: Path
    mda: Path
    mail_user: str
    ca: Path | None  # TLS (implicit, verified against this CA), or None for plain IMAP


def fetchmail_idle_rc(peer: IdlePeer) -> Path:
    """An rc file (0600) for one account: IMAP IDLE on INBOX, delete after delivery, deliver
    through the benchmark MDA; a daemon (it polls again after 300 s if IDLE ends)."""
    if peer.ca is not None:
        host = "localhost"
        security = f"ssl sslcertck sslcertfile {_q(str(peer.ca))} sslcommonname {_q(host)}"
    else:
        host, security = "127.0.0.1", 'sslproto ""'  # no silent STARTTLS upgrade
    rc = (
        "set daemon 300\n"
        "set no syslog\n"
        "set no bouncemail\n"
        "set no spambounce\n"
        f"set postmaster {_q(peer.mail_user)}\n\n"
        f"poll {host} service {peer.port} protocol IMAP auth password\n"
        f"    user {_q(peer.user)} there with password {_q(peer.password)} "
        f"is {_q(peer.mail_user)} here\n"
        f"    nokeep idle {security}\n"
        f"    mda {_q(f'{peer.mda} {peer.maildir}')}\n"
    )
    path = peer.home / "fetchmailrc"
    path.write_text(rc)
    os.chmod(path, 0o600)
    return path


def fetchmail_argv(home: Path, rc: Path) -> list[str]:
    return [
        FETCHMAIL,
        "--nodetach",
        "-f",
        str(rc),
        "-i",
        str(home / "fetchids"),
        "--pidfile",
        str(home / "fetchmail.pid"),
    ]


def start_as(argv: list[str], home: Path, uid: int, gid: int, log: Path) -> subprocess.Popen[bytes]:
    """Start a peer as the mail user, in a session of its own."""
    env = {
        "HOME": str(home),
        "FETCHMAILHOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            cwd=home,
            user=uid,
            group=gid,
            extra_groups=[],
            start_new_session=True,
        )


def end_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL of each process group after a few seconds."""
    procs = list(procs)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- /proc figures ----------------------------------------------------------------------------


def rss_kb(pid: int | str) -> int:
    """VmRSS of a process in KiB (0 once it is gone)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pss_kb(pid: int | str) -> int:
    """Proportional set size in KiB: shared pages counted once across the processes."""
    path = f"/proc/{pid}/smaps_rollup"
    with contextlib.suppress(OSError, ValueError, IndexError), open(path) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def session_processes(sid: int | None) -> dict[str, list[int]]:
    """The processes of a session by command name (Dovecot's: imap, imap-hibernate, …)."""
    found: dict[str, list[int]] = {}
    if sid is None:
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.find(b"(") + 1 : raw.rfind(b")")].decode(errors="replace")
        rest = raw[raw.rfind(b")") + 2 :].split()
        if int(rest[3]) == sid:
            found.setdefault(name, []).append(int(entry.name))
    return found


def group_memory_mb(pids: Iterable[int]) -> tuple[float, float]:
    """(sum of VmRSS, sum of PSS) of some processes, MiB."""
    pids = list(pids)
    return sum(rss_kb(p) for p in pids) / 1024, sum(pss_kb(p) for p in pids) / 1024


def thread_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (utime + stime) of each thread of a process, by thread id."""
    from common import CLK

    found: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/task/{entry.name}/stat", "rb") as f:
                    raw = f.read()
                rest = raw[raw.rfind(b")") + 2 :].split()
                found[int(entry.name)] = (int(rest[11]) + int(rest[12])) / CLK
    return found


def busiest_threads(a: dict[int, float], b: dict[int, float], span: float, top: int = 3) -> str:
    """The threads that used the most CPU between two `thread_seconds`, as shares of a core."""
    used = sorted(((b[t] - a.get(t, 0.0)) / span for t in b), reverse=True)
    shown = ", ".join(f"{100 * u:.1f}%" for u in used[:top])
    return f"{len(b)} threads; busiest {shown}; the rest {100 * sum(used[top:]):.1f}%"


# --- Dovecot's hibernation race, with a raw client -------------------------------------------


def _line(sock: socket.socket, buf: bytearray, timeout: float) -> bytes | None:
    """One line from a plain socket (None on timeout or end of file)."""
    end = time.monotonic() + timeout
    while b"\n" not in buf:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            return None
        data = sock.recv(4096)
        if not data:
            return None
        buf += data
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line


def _until(sock: socket.socket, buf: bytearray, tag: bytes) -> None:
    while (line := _line(sock, buf, 10.0)) is not None and not line.startswith(tag + b" "):
        pass


def race_probe(
    port: int, login: tuple[str, str], drop: Callable[[], None], at: float
) -> tuple[float | None, bool]:
    """IDLE until Dovecot hibernates the session, DONE, IDLE again, `drop()` `at` seconds
    later: seconds until the EXISTS (None: none within 20 s) and, when none came, whether
    the next DONE (what mailhaul's keepalive sends) brings it. No mailhaul involved."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        buf = bytearray()
        _line(sock, buf, 10.0)
        sock.sendall(f"a LOGIN {login[0]} {login[1]}\r\n".encode())
        _until(sock, buf, b"a")
        sock.sendall(b"b EXAMINE INBOX\r\nc IDLE\r\n")
        _until(sock, buf, b"b")
        _line(sock, buf, 10.0)  # + idling
        time.sleep(7)  # hibernated (imap_hibernate_timeout 5 s)
        sock.sendall(b"DONE\r\n")
        _until(sock, buf, b"c")
        sock.sendall(b"d IDLE\r\n")
        started = time.monotonic()
        _line(sock, buf, 10.0)
        time.sleep(max(0.0, at - (time.monotonic() - started)))
        drop()
        dropped = time.monotonic()
        while (line := _line(sock, buf, dropped + 20 - time.monotonic())) is not None:
            if line.rstrip().endswith(b"EXISTS"):
                return time.monotonic() - dropped, False
        sock.sendall(b"DONE\r\n")  # the keepalive
        while (line := _line(sock, buf, 10.0)) is not None and not line.startswith(b"d "):
            if line.rstrip().endswith(b"EXISTS"):
                return None, True
    return None, False
