"""Running `mailhaul` as a real process, and killing it at a chosen moment."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

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


# serve's info line once uvicorn is up (web/server.py): "http: listening on 127.0.0.1:41234 …"
_LISTENING = re.compile(r"http: listening on (\S+):(\d+)")
# No proxy, even if the environment names one: the tests talk to loopback.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServeProcess:
    """`python -m mailhaul serve` on ``home``, its HTTP on a free loopback port.

    ``with ServeProcess(home) as serve: page.goto(serve.url + "/healthz")``. `start()` returns
    once /healthz answers "ok"; `stop()` sends SIGTERM and returns the exit code. ``env`` adds
    to (or overrides) the process's environment, e.g. ``MAILHAUL_DATABASE_URL``; MAILHAUL_*
    variables of the calling shell are not passed on. `log` is its stderr so far.
    """

    def __init__(self, home: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.args = args
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAILHAUL_")}
        self.env = {
            **inherited,
            "MAILHAUL_HOME": str(home),
            "MAILHAUL_WEB_LISTEN": "127.0.0.1:0",
            "MAILHAUL_LOG_FORMAT": "text",
            "MAILHAUL_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""  # e.g. http://127.0.0.1:41234, once started
        self._lines: list[str] = []
        self._bound = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return "".join(self._lines)

    def start(self, timeout: float = 30.0) -> ServeProcess:
        """Start serve and wait until its /healthz says ok; AssertionError (with its log) if not."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailhaul", "serve", *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        try:
            self._wait_for(self._bound.is_set, deadline, "log its HTTP address")
            self._wait_for(self._healthy, deadline, "answer /healthz with status ok")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``) and return the exit code."""
        proc = self.proc
        if proc is None:
            raise RuntimeError("serve was not started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(
                    f"serve did not stop within {timeout:g}s of SIGTERM:\n{self.log}"
                ) from None
        if self._reader is not None:
            self._reader.join(5.0)
        return proc.returncode

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with self.proc.stderr:
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                self._lines.append(line)
                match = _LISTENING.search(line)
                if match and not self._bound.is_set():
                    host, port = match.groups()
                    host = f"[{host}]" if ":" in host else host
                    self.url = f"http://{host}:{port}"
                    self._bound.set()

    def _healthy(self) -> bool:
        try:
            with _DIRECT.open(f"{self.url}/healthz", timeout=5) as response:
                return bool(json.load(response).get("status") == "ok")
        except (OSError, http.client.HTTPException, ValueError):  # URLError is an OSError
            return False

    def _wait_for(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        assert self.proc is not None
        while not ready():
            if self.proc.poll() is not None:
                if self._reader is not None:
                    self._reader.join(5.0)  # the whole log, up to the exit
                raise AssertionError(
                    f"serve exited ({self.proc.returncode}) before it would {what}:\n{self.log}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not {what} in time:\n{self.log}")
            time.sleep(0.05)
