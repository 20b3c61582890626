"""One `mailhaul serve` under the push benchmark, and the copy of src/ it runs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from common import PYTHON, REPO, clean_env
from scale import check_alive, free_port, scrape, spawn, stop, wait_http

if TYPE_CHECKING:
    from push import PushBench

OWNER = "owner@push.test"
LOCAL_DOMAIN = "local.test"


class Serve:
    """One `mailhaul serve` with its home, its metrics URL and its accounts' destinations."""

    def __init__(self, work: Path, name: str, users: list[tuple[str, str]], bench: PushBench):
        from mailhaul.bootstrap import App, init_home
        from mailhaul.domain.account import AccountSpec
        from mailhaul.domain.options import Protocol, RetrievalOptions, Security
        from mailhaul.settings import load_settings

        self.home = work / name
        self.home.mkdir(mode=0o700)
        self.port = free_port()
        self.users = users
        self.bench = bench
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / f"{name}.log"
        self.write_toml(bench.args.rate)
        settings = load_settings(self.home, {}, environ={})
        init_home(settings)
        app = App(settings)
        security = Security(bench.args.security)
        ports = bench.server.ports
        port = ports.imaps if security is Security.SSL else ports.imap
        t0 = time.perf_counter()
        for i, (user, password) in enumerate(users):
            spec = AccountSpec(
                owner=OWNER,
                protocol=Protocol.IMAP,
                host="127.0.0.1",
                port=port,
                security=security,
                username=user,
                options=RetrievalOptions(),
                deliver_to=f"{name}{i:05d}@{LOCAL_DOMAIN}",
                interval=3600,
                push=True,
            )
            app.accounts.add(spec, password)
        app.db.dispose()
        self.added = time.perf_counter() - t0
        mail = Path(settings.maildir_path.format(home=self.home, domain="{d}", local="{l}"))
        self.dests = [
            Path(str(mail).replace("{d}", LOCAL_DOMAIN).replace("{l}", f"{name}{i:05d}"))
            for i in range(len(users))
        ]

    def write_toml(self, rate: float, extra: str = "", enabled: bool = True) -> None:
        (self.home / "mailhaul.toml").write_text(
            f'[web]\nlisten = "127.0.0.1:{self.port}"\n\n'
            f"[push]\nenabled = {str(enabled).lower()}\nconnects_per_second = {rate:g}\n{extra}"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> float:
        """Start serve; returns the monotonic time of the spawn."""
        env = clean_env(
            SSL_CERT_FILE=str(self.bench.server.ca_path), PYTHONPATH=str(self.bench.src)
        )
        argv = [PYTHON, "-m", "mailhaul", "--home", str(self.home), "serve"]
        t0 = time.monotonic()
        self.proc = spawn(argv, env, self.log)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc, self.log)
        return t0

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])
            self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics(self) -> dict[str, float]:
        assert self.proc is not None
        check_alive(self.proc, self.log)
        return scrape(self.url)


def snapshot_src(dest: Path) -> str:
    """Copy src/ (work in progress in the tree cannot change the code under test); returns
    a short digest of the copy, for the report."""
    import hashlib
    import shutil

    shutil.copytree(REPO / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    digest = hashlib.sha256()
    for path in sorted(dest.rglob("*.py")):
        digest.update(str(path.relative_to(dest)).encode() + b"\0" + path.read_bytes())
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(dest)], check=False)
    return digest.hexdigest()[:12]
