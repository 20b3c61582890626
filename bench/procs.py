"""Running one tool as a fresh process: wall time, exit status, peak RSS (wait4), timeout."""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import NCPU, busy_seconds, session_seconds

_live: set[int] = set()  # process groups still running, ended by kill_all() on exit

# The peak RSS of a process that was forked from this (big) Python process starts at this
# process's own peak: Linux carries the pre-exec high-water mark over exec (and vfork shares
# it). So every tool is started through a small launcher that forks and waits for it:
# GNU time (-f %M), or, without it, a `python -S` one (whose own ~8 MB is then the floor).
TIME = "/usr/bin/time"
_PY_LAUNCHER = (
    "import os,sys\n"
    "pid=os.fork()\n"
    "if pid==0:\n"
    "    os.execvp(sys.argv[2],sys.argv[2:])\n"
    "_,st,ru=os.wait4(pid,0)\n"
    "open(sys.argv[1],'w').write(str(ru.ru_maxrss)+'\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(st))\n"
)


def launcher(rss_file: Path) -> list[str]:
    """The command prefix that runs a tool and writes its peak RSS (KiB) to `rss_file`."""
    if os.access(TIME, os.X_OK):
        return [TIME, "-f", "%M", "-o", str(rss_file)]
    return [sys.executable, "-S", "-c", _PY_LAUNCHER, str(rss_file)]


def launcher_kind() -> str:
    if os.access(TIME, os.X_OK):
        return "GNU time -f %M (ru_maxrss of the tool process)"
    return "a python -S fork/wait4 launcher (ru_maxrss; floor about 8 MB)"


def _ours_seconds() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Measured:
    wall: float  # seconds, from spawn to reaped
    returncode: int
    maxrss_kb: int  # ru_maxrss of the tool (and of its waited-for children): peak RSS
    stdout: str
    stderr: str
    timed_out: bool
    other_cpu: float  # share of the machine's CPU used by unrelated processes meanwhile


def user_ids(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def run_measured(
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
    stdin_data: bytes | None = None,
    timeout: float = 600.0,
    server_session: int | None = None,
) -> Measured:
    """Run `argv` to completion (killing its process group after `timeout`)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout", log_dir / "stderr"
    rss_path = log_dir / "maxrss"
    argv = [*launcher(rss_path), *argv]
    kwargs: dict[str, object] = {}
    if user is not None:
        uid, gid = user_ids(user)
        kwargs.update(user=uid, group=gid, extra_groups=[])
        os.chown(log_dir, uid, gid)  # the launcher writes the peak RSS file in there
    with out_path.open("wb") as out, err_path.open("wb") as err:
        cpu_before = (busy_seconds(), _ours_seconds(), session_seconds(server_session))
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            **kwargs,  # type: ignore[call-overload]
        )
        _live.add(proc.pid)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        try:
            if stdin_data is not None and proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(stdin_data)
                proc.stdin.close()
            _pid, status, _usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            cpu_after = (busy_seconds(), _ours_seconds(), session_seconds(server_session))
        finally:
            timer.cancel()
            _live.discard(proc.pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Whatever the tool left behind in its process group (it should be nothing).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    busy, ours, server = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
    try:
        maxrss = int(rss_path.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        maxrss = 0
    return Measured(
        wall=wall,
        returncode=proc.returncode,
        maxrss_kb=maxrss,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        timed_out=timed_out.is_set(),
        other_cpu=max(0.0, busy - ours - server) / (wall * NCPU),
    )


def kill_all() -> None:
    """End every tool process group still running (on Ctrl-C or an error)."""
    for pid in list(_live):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _live.discard(pid)
