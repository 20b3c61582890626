"""Private rspamd, SpamAssassin spamd and ClamAV clamd for the tests, each on a loopback port
(or unix socket) of its own, from Debian's packages, never as system services; and
scanners that misbehave (accept and never answer, answer garbage) for the failure tests.

clamd has no signatures without the internet: ``ClamdServer`` writes a one-signature
database for the EICAR test file (its MD5 for the whole file, its bytes for anywhere in a
decoded mail part) and starts clamd on it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from support.local_servers import HOST, accepts, die_with_parent, free_ports

RSPAMD = Path("/usr/bin/rspamd")
SPAMD = Path("/usr/sbin/spamd")
CLAMD = Path("/usr/sbin/clamd")
INSTALL_HINT = "run scripts/install-test-deps.sh (rspamd, spamd, clamav-daemon)"

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
SIGNATURE = "Mailhaul-Test-EICAR"


class ScannerError(RuntimeError):
    """A test scanner would not start."""


def ham(n: int = 1) -> bytes:
    """An ordinary message as a provider's mailbox holds it: its MX's Received line on top."""
    return (
        b"Return-Path: <alice@example.org>\r\n"
        b"Received: from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])\r\n"
        b"\tby mx.example.net (Postfix) with ESMTPS id 4AB1%d\r\n"
        b"\tfor <bob@example.net>; Fri, 04 Dec 2026 03:59:58 +0000 (UTC)\r\n"
        b"From: Alice <alice@example.org>\r\n"
        b"To: bob@example.net\r\n"
        b"Subject: Lunch on Friday %d\r\n"
        b"Date: Fri, 04 Dec 2026 04:00:00 +0000\r\n"
        b"Message-ID: <lunch-%d@example.org>\r\n"
        b"\r\n"
        b"Hi Bob, shall we meet for lunch on Friday at noon? The usual place.\r\n"
        b"Alice\r\n" % (n, n, n)
    )


def spam(n: int = 1) -> bytes:
    """A message every spam scanner calls spam (GTUBE)."""
    return ham(n).replace(b"Hi Bob, shall we", GTUBE + b"\r\nHi Bob, shall we")


def infected(n: int = 1) -> bytes:
    """A message with the EICAR test file attached (base64, as mail carries it)."""
    attachment = base64.encodebytes(EICAR).replace(b"\n", b"\r\n")
    return (
        b"From: Mallory <mallory@example.org>\r\n"
        b"To: bob@example.net\r\n"
        b"Subject: Invoice %d\r\n"
        b"Message-ID: <invoice-%d@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n'
        b"\r\n"
        b"--b1\r\nContent-Type: text/plain\r\n\r\nPlease see the invoice.\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="invoice.com"\r\n\r\n'
        b"%s--b1--\r\n" % (n, n, attachment)
    )


def _as_root() -> bool:
    return os.geteuid() == 0


class _Daemon:
    """A child process that dies with the test process; its output in ``root/out``."""

    name = "scanner"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str]) -> None:
        with (self.root / "out").open("ab") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )

    def _wait(self, ready: object, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if callable(ready) and ready():
                return
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise ScannerError(f"{self.name} did not start: {self.output()[-2000:]}")

    def start(self) -> None:
        """Start the daemon and wait until it answers (ScannerError if it does not)."""
        raise NotImplementedError

    def output(self) -> str:
        path = self.root / "out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the daemon (and its workers: it is their process group's leader)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


class RspamdServer(_Daemon):
    """rspamd's normal worker only, on ``url``; no Redis, no controller, DNS that fails fast."""

    name = "rspamd"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (self.port,) = free_ports(1)
        self.url = f"http://{HOST}:{self.port}"
        for sub in ("local.d", "override.d", "db", "run", "log"):
            (root / sub).mkdir(exist_ok=True)
        (root / "local.d" / "worker-normal.inc").write_text(
            f'bind_socket = "{HOST}:{self.port}";\ncount = 1;\n'
        )
        for worker in ("controller", "proxy", "fuzzy"):
            (root / "override.d" / f"worker-{worker}.inc").write_text("enabled = false;\n")
        # Nothing on the network: DNS questions go to a closed port and fail at once.
        (root / "local.d" / "options.inc").write_text(
            'dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 1; }\n'
        )

    def start(self) -> None:
        if not RSPAMD.exists():
            raise ScannerError(f"{RSPAMD} is missing: {INSTALL_HINT}")
        root = self.root
        argv = [str(RSPAMD), "-f"]
        if _as_root():
            argv += ["-i", "-u", "root", "-g", "root"]
        for var, value in (
            ("LOCAL_CONFDIR", root),
            ("DBDIR", root / "db"),
            ("RUNDIR", root / "run"),
            ("LOGDIR", root / "log"),
        ):
            argv += ["--var", f"{var}={value}"]
        self._spawn(argv)
        self._wait(self._pong, 90)

    def _pong(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                return b"pong" in sock.recv(1000)
        except OSError:
            return False


class SpamdServer(_Daemon):
    """spamd on ``address`` (host:port), local tests only (no network rules)."""

    name = "spamd"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        (self.port,) = free_ports(1)
        self.address = f"{HOST}:{self.port}"

    def start(self) -> None:
        if not SPAMD.exists():
            raise ScannerError(f"{SPAMD} is missing: {INSTALL_HINT}")
        argv = [
            str(SPAMD),
            f"--listen={self.address}",
            f"--pidfile={self.root / 'spamd.pid'}",
            "--local",
            "--nouser-config",
            "--syslog=stderr",
            "--max-children=2",
        ]
        if _as_root():
            argv.append("--username=nobody")
        self._spawn(argv)
        self._wait(lambda: accepts(self.port), 60)


class ClamdServer(_Daemon):
    """clamd on a unix socket (``address``) with a one-signature database for EICAR."""

    name = "clamd"

    def __init__(self, root: Path, stream_max: str = "100M") -> None:
        super().__init__(root)
        self.address = str(root / "clamd.sock")
        database = root / "db"
        database.mkdir(exist_ok=True)
        digest = hashlib.md5(EICAR).hexdigest()  # noqa: S324 (ClamAV's hash signature)
        (database / "test.hdb").write_text(f"{digest}:{len(EICAR)}:{SIGNATURE}\n")
        (database / "test.ndb").write_text(f"{SIGNATURE}-Body:0:*:{EICAR.hex()}\n")
        lines = [
            f"DatabaseDirectory {database}",
            f"LocalSocket {self.address}",
            "Foreground yes",
            f"LogFile {root / 'clamd.log'}",
            f"PidFile {root / 'clamd.pid'}",
            "ScanMail yes",
            f"StreamMaxLength {stream_max}",
        ]
        if _as_root():
            lines.append("User root")
        (root / "clamd.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        if not CLAMD.exists():
            raise ScannerError(f"{CLAMD} is missing: {INSTALL_HINT}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)
        self._spawn([str(CLAMD), "-c", str(self.root / "clamd.conf")])
        self._wait(self._pong, 60)

    def _pong(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(self.address)
                sock.sendall(b"zPING\0")
                return sock.recv(100).startswith(b"PONG")
        except OSError:
            return False


class SilentScanner:
    """Accepts connections on a loopback port and never answers (a hung scanner); with
    ``reply`` it answers that instead and closes (a scanner talking garbage)."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.address = f"{HOST}:{self.port}"
        self.url = f"http://{HOST}:{self.port}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.reply is None:
                self._held.append(conn)
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for conn in self._held:
            conn.close()


def tool_missing() -> str | None:
    """What is missing to run the real scanners, or None."""
    missing = [str(p) for p in (RSPAMD, SPAMD, CLAMD) if not p.exists()]
    if missing or shutil.which("rspamd") is None:
        return f"{', '.join(missing) or 'rspamd'} missing: {INSTALL_HINT}"
    return None
