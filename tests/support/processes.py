"""Running `mailhaul` as a real process, and killing it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from support.mailhaul_home import Home


def start_fetch(
    home: Home, account_id: int, stderr: int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """`python -m mailhaul fetch ID` on ``home``."""
    env = {**os.environ, "MAILHAUL_HOME": str(home.app.settings.home)}
    return subprocess.Popen(
        [sys.executable, "-m", "mailhaul", "fetch", str(account_id)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def kill_when(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60.0
) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; False if it finished first."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.0005)
        proc.kill()
        proc.wait()
        raise AssertionError("the fetch neither finished nor reached the kill point")
    finally:
        if proc.stderr is not None:
            proc.stderr.close()
