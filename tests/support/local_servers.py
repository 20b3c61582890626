"""What the private test servers (Dovecot, GNU Mailutils) share: loopback ports, a runtime
folder the mail user can reach, and children that die with the test process."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import stat
import tempfile
from pathlib import Path

HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on the loopback address (held together while chosen)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def accepts(port: int) -> bool:
    """Whether something accepts connections on the loopback port."""
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def reachable_by_others(path: Path) -> bool:
    """True when a user who is neither owner nor in the group can traverse to `path`."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def runtime_parent() -> str:
    """A temp folder the unprivileged mail user can traverse (for server runtime trees)."""
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        if reachable_by_others(Path(candidate)):
            return candidate
    raise RuntimeError("no temp directory that the mail user can traverse")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, even by SIGKILL."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
