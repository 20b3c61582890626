"""Scale: thousands of accounts on one `mailhaul serve`, and 1 → 3 `mailhaul worker` processes.

    .venv/bin/python bench/scale.py [--accounts 300] [--interval 60] [--minutes 2]
        [--idle-seconds 30] [--worker-counts 1 2 3] [--worker-seconds 30] [--skip PHASE ...]

The defaults are a quick check (about 5 minutes). Issue 4's targets (about 30 minutes):

    .venv/bin/python bench/scale.py --accounts 10000 --interval 300 --minutes 6 \\
        --idle-seconds 120 --worker-seconds 90

One private Dovecot (tests/support/dovecot.py) holds one user per account; their mailboxes
are empty, or hold mail an earlier poll already fetched (`--kept`), so every measured poll is
"nothing new". Accounts alternate POP3 and IMAP, implicit TLS by default, with a CA bundle
(the system CAs plus the test CA) in SSL_CERT_FILE: a poll pays what it pays against a real
provider, loading the system CAs included.

1. **serve** (SQLite): the accounts are added with mailhaul's own `AccountService.add`
   (passwords encrypted as always), then `python -m mailhaul serve` runs with the default
   settings (`poll.workers` 4, `poll.per_host_limit` 4, interval 300 s). The first round
   (every account due at once) is the warm-up; then a window of `--minutes` is measured:
   polls/s, queue lag (`mailhaul_queue_lag_seconds` from `/metrics`, scraped every
   `--sample` s), CPU of the serve process (utime+stime from /proc/PID/stat), its RSS
   (VmRSS, VmHWM), Dovecot's CPU and the rest of the machine's.
2. **idle**: every account's next poll is moved an hour ahead; once no poll runs, the serve
   process's CPU is measured over `--idle-seconds` without any HTTP request.
3. **workers** (PostgreSQL at 127.0.0.1:5432): a fresh database `mailhaul_bench_scale`
   (dropped at the end) with the same accounts, all due at once (a backlog, so the rate is
   the processes' capacity); 1, 2, 3 `mailhaul worker` processes, polls finished per second
   over `--worker-seconds` (from the runs table), CPU of the workers, Dovecot and PostgreSQL.

Needs root (the test Dovecot). Work files in $MAILHAUL_BENCH_DIR (default /var/tmp). Prints
a Markdown report and writes it to bench/results/scale.md (samples: scale-samples.csv).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    CLK,
    NCPU,
    PYTHON,
    REPO,
    RESULTS,
    base_problems,
    busy_seconds,
    clean_env,
    cpu_model,
    dovecot_version,
    interrupt_on_signals,
    mailhaul_version,
    make_work_dir,
    remove_work_dir,
    say,
    session_seconds,
    start_dovecot,
    stat_fields,
    write_result,
)

sys.path[:0] = [str(REPO / "tests")]
from support.dovecot import MAIL_USER, DovecotServer  # noqa: E402

OWNER = "owner@scale.test"
SOURCE_DOMAIN = "scale.test"
LOCAL_DOMAIN = "local.test"
PG_ADMIN = os.environ.get(
    "MAILHAUL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PG_DATABASE = "mailhaul_bench_scale"
SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")
MB = 1024 * 1024
CAUGHT_UP = 5.0  # seconds of queue lag under which the warm-up (first round) is over


# --- process accounting (from /proc) -------------------------------------------------------------


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process, all threads (plus its reaped children's, if asked)."""
    rest = stat_fields(pid)
    if rest is None:
        return 0.0
    end = 15 if children else 13
    return sum(int(x) for x in rest[11:end]) / CLK


def command_seconds(name: bytes) -> float:
    """CPU seconds of every process whose command name is `name` (e.g. PostgreSQL's)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as f:
                if f.read().strip() != name:
                    continue
        except OSError:
            continue
        rest = stat_fields(entry.name)
        if rest is not None:
            total += sum(int(x) for x in rest[11:15])
    return total / CLK


def own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


# --- child processes ----------------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )
    _children.append(proc)
    return proc


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 90.0) -> None:
    """SIGTERM (mailhaul finishes the polls in hand), then SIGKILL after `timeout`."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with contextlib.suppress(ValueError):
            _children.remove(proc)


def kill_children() -> None:
    for proc in list(_children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)
    _children.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- metrics ------------------------------------------------------------------------------------

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(url: str) -> dict[str, float]:
    """A /metrics page as {"name{labels}": value}."""
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback, http
        text = resp.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


@dataclass
class Sample:
    t: float  # monotonic
    serve_cpu: float
    dovecot_cpu: float
    busy: float
    own: float
    rss_mb: float
    hwm_mb: float
    lag: float | None = None
    polls: float | None = None  # ok + error, since start
    errors: float | None = None
    running: float | None = None
    duration_sum: float | None = None
    duration_count: float | None = None


class Sampler:
    """Samples the serve process (and /metrics, while `scraping`) every `every` seconds."""

    def __init__(self, pid: int, dovecot_sid: int | None, metrics_url: str, every: float):
        self.pid = pid
        self.sid = dovecot_sid
        self.url = metrics_url
        self.every = every
        self.scraping = True
        self.samples: list[Sample] = []
        self.scrape_errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def take(self, scrape_metrics: bool) -> Sample:
        rss, hwm = memory_mb(self.pid)
        s = Sample(
            t=time.monotonic(),
            serve_cpu=cpu_seconds(self.pid),
            dovecot_cpu=session_seconds(self.sid),
            busy=busy_seconds(),
            own=own_seconds(),
            rss_mb=rss,
            hwm_mb=hwm,
        )
        if scrape_metrics:
            try:
                m = scrape(self.url)
            except OSError:
                self.scrape_errors += 1
            else:
                s.lag = m.get("mailhaul_queue_lag_seconds")
                ok = m.get('mailhaul_polls_total{result="ok"}', 0.0)
                s.errors = m.get('mailhaul_polls_total{result="error"}', 0.0)
                s.polls = ok + s.errors
                s.running = m.get("mailhaul_running_polls")
                s.duration_sum = m.get("mailhaul_poll_duration_seconds_sum")
                s.duration_count = m.get("mailhaul_poll_duration_seconds_count")
        return s

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self.take(self.scraping))
            next_at += self.every
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def last(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]


# --- results ------------------------------------------------------------------------------------


@dataclass
class Window:
    """What happened between two samples."""

    seconds: float
    polls: float
    errors: float
    serve_cpu: float  # share of one core
    dovecot_cpu: float
    other_cpu: float  # share of one core used by everything else (the bench itself excluded)
    busy: float  # share of the whole machine
    lags: list[float]
    rss_mb: float
    hwm_mb: float
    mean_poll_ms: float | None

    @classmethod
    def of(cls, a: Sample, b: Sample, samples: list[Sample]) -> Window:
        secs = b.t - a.t
        serve = b.serve_cpu - a.serve_cpu
        dove = b.dovecot_cpu - a.dovecot_cpu
        busy = b.busy - a.busy
        own = b.own - a.own
        polls = (b.polls or 0.0) - (a.polls or 0.0)
        dur = None
        if b.duration_count is not None and a.duration_count is not None:
            n = b.duration_count - a.duration_count
            if n > 0 and b.duration_sum is not None and a.duration_sum is not None:
                dur = 1000 * (b.duration_sum - a.duration_sum) / n
        return cls(
            seconds=secs,
            polls=polls,
            errors=(b.errors or 0.0) - (a.errors or 0.0),
            serve_cpu=serve / secs,
            dovecot_cpu=dove / secs,
            other_cpu=max(0.0, busy - serve - dove - own) / secs,
            busy=busy / (secs * NCPU),
            lags=[s.lag for s in samples if s.lag is not None],
            rss_mb=b.rss_mb,
            hwm_mb=b.hwm_mb,
            mean_poll_ms=dur,
        )


@dataclass
class WorkerRow:
    processes: int
    seconds: float
    polls: int
    errors: int
    workers_cpu: float
    dovecot_cpu: float
    postgres_cpu: float
    other_cpu: float
    busy: float
    backlog_left: int
    rss_mb: float

    @property
    def rate(self) -> float:
        return self.polls / self.seconds


@dataclass
class Report:
    args: argparse.Namespace
    started: float = field(default_factory=time.monotonic)
    setup: dict[str, str] = field(default_factory=dict)
    serve: dict[str, str] = field(default_factory=dict)
    serve_window: Window | None = None
    idle_window: Window | None = None
    first_round: float | None = None
    caught_up: float | None = None
    first_round_lag: float | None = None
    workers: list[WorkerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the bench ----------------------------------------------------------------------------------


class ScaleBench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.report = Report(args)
        self.server = DovecotServer(work / "dovecot")
        self.users: list[tuple[str, str]] = []
        self.dovecot_sid: int | None = None
        self.cert_bundle = work / "ca-bundle.pem"

    # setup ---------------------------------------------------------------------------------
    def start_dovecot(self) -> None:
        self.dovecot_sid = start_dovecot(self.server, self.work)
        bundle = SYSTEM_CAS.read_bytes() if SYSTEM_CAS.exists() else b""
        self.cert_bundle.write_bytes(bundle + b"\n" + self.server.ca_path.read_bytes())
        n, kept, share = self.args.accounts, self.args.kept, self.args.kept_share
        t0 = time.perf_counter()
        self.users = self.server.add_users(
            (f"s{i:05d}@{SOURCE_DOMAIN}", secrets.token_urlsafe(12)) for i in range(n)
        )
        with_mail = 0
        if kept:
            step = max(1, round(1 / share)) if share > 0 else 0
            for i, (user, _) in enumerate(self.users):
                if step and i % step == 0:
                    for k in range(kept):
                        self.server.deliver(user, message(user, k))
                    with_mail += 1
        say(
            f"dovecot: {n} users ({with_mail} with {kept} message(s) each) in "
            f"{time.perf_counter() - t0:.1f} s; ports {self.server.ports}"
        )
        self.report.setup["mailboxes"] = (
            f"{n:,} Dovecot users; {with_mail:,} of them hold {kept} message(s) of ~2 KB "
            f"that the first poll fetches (kept on the server), the others are empty"
            if with_mail
            else f"{n:,} Dovecot users, empty mailboxes"
        )

    def specs(self) -> list[tuple[Any, str]]:
        from mailhaul.domain.account import AccountSpec
        from mailhaul.domain.options import Protocol, RetrievalOptions, Security

        security = Security(self.args.security)
        ports = self.server.ports
        out = []
        for i, (user, password) in enumerate(self.users):
            pop3 = self.args.protocols[i % len(self.args.protocols)] == "pop3"
            if security is Security.SSL:
                port = ports.pop3s if pop3 else ports.imaps
            else:
                port = ports.pop3 if pop3 else ports.imap
            spec = AccountSpec(
                owner=OWNER,
                protocol=Protocol.POP3 if pop3 else Protocol.IMAP,
                host="127.0.0.1",
                port=port,
                security=security,
                username=user,
                options=RetrievalOptions(keep=True),
                deliver_to=f"u{i:05d}@{LOCAL_DOMAIN}",
                interval=self.args.interval,
            )
            out.append((spec, password))
        return out

    def make_home(self, name: str, toml: str) -> Any:
        from mailhaul.bootstrap import App, init_home
        from mailhaul.settings import load_settings

        home = self.work / name
        home.mkdir(mode=0o700)
        (home / "mailhaul.toml").write_text(toml)
        settings = load_settings(home, {}, environ={})
        init_home(settings)
        return App(settings)

    def add_accounts(self, app: Any) -> float:
        """Add every account with `AccountService.add` (one transaction each, as the CLI
        does); returns the seconds it took."""
        t0 = time.perf_counter()
        for spec, password in self.specs():
            app.accounts.add(spec, password)
        app.db.dispose()
        return time.perf_counter() - t0

    # 1. serve ------------------------------------------------------------------------------
    def run_serve(self) -> None:
        args, rep = self.args, self.report
        port = free_port()
        app = self.make_home(
            "serve-home",
            f'[web]\nlisten = "127.0.0.1:{port}"\n'
            + (f"[poll]\nworkers = {args.poll_workers}\n" if args.poll_workers else ""),
        )
        db_file = Path(app.settings.database_url.split(":///", 1)[-1])
        took = self.add_accounts(app)
        due = due_times(db_file)
        per_second = Counter(int(t) for t in due)
        rep.serve["accounts added"] = (
            f"{len(due):,} in {took:.1f} s with `AccountService.add` (encrypted passwords)"
        )
        rep.serve["due times right after adding"] = (
            f"all within {max(due) - min(due):.1f} s: up to {max(per_second.values()):,} "
            f"accounts due in the same second"
        )
        say(f"serve: {rep.serve['accounts added']}; {rep.serve['due times right after adding']}")

        env = clean_env(SSL_CERT_FILE=str(self.cert_bundle))
        log = self.work / "serve.log"
        argv = [PYTHON, "-m", "mailhaul", "--home", str(app.settings.home), "serve"]
        proc = spawn(argv, env, log)
        url = f"http://127.0.0.1:{port}/metrics"
        t_start = time.monotonic()
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        say(f"serve: pid {proc.pid} up after {time.monotonic() - t_start:.1f} s")
        sampler = Sampler(proc.pid, self.dovecot_sid, url, args.sample)
        sampler.start()
        profiler: subprocess.Popen[bytes] | None = None
        try:
            # Warm-up: the first round (every account due at once), and the catch-up after it
            # until the queue lag is back under CAUGHT_UP seconds.
            n = len(due)
            limit = t_start + args.warmup_max
            first_done: float | None = None
            while True:
                check_alive(proc, log)
                last = sampler.last()
                if first_done is None and last is not None and (last.polls or 0) >= n:
                    first_done = last.t
                if first_done is not None and last is not None and (last.lag or 0) < CAUGHT_UP:
                    break
                if time.monotonic() > limit:
                    rep.notes.append(
                        f"the warm-up did not end within {args.warmup_max:.0f} s "
                        f"({(last.polls or 0) if last else 0:.0f} of {n} polls, queue lag "
                        f"{(last.lag or 0) if last else 0:.0f} s): the window starts anyway"
                    )
                    break
                time.sleep(1.0)
            now = time.monotonic()
            rep.first_round = (first_done or now) - t_start
            rep.caught_up = now - t_start
            lags = [s.lag for s in sampler.between(t_start, now) if s.lag is not None]
            rep.first_round_lag = max(lags) if lags else None
            say(
                f"serve: first round of {n} polls took {rep.first_round:.0f} s, lag under "
                f"{CAUGHT_UP:g} s after {rep.caught_up:.0f} s; peak queue lag "
                f"{rep.first_round_lag or 0:.0f} s"
            )
            spread = due_times(db_file)
            rep.serve["due times after the first round"] = spread_text(
                spread, args.interval, time.time()
            )
            # The measured window.
            a = sampler.take(True)
            t0 = a.t
            if args.py_spy:
                profiler = start_py_spy(proc.pid, args.minutes * 60, self.work)
            next_note = t0 + 60
            while time.monotonic() < t0 + args.minutes * 60:
                check_alive(proc, log)
                time.sleep(1.0)
                last = sampler.last()
                if last is not None and last.t >= next_note:
                    next_note += 60
                    cpu = (last.serve_cpu - a.serve_cpu) / (last.t - t0)
                    say(
                        f"serve: {last.t - t0:.0f} s into the window: lag {last.lag} s, "
                        f"{last.polls or 0:.0f} polls, serve CPU {pct(cpu)}"
                    )
            b = sampler.take(True)
            rep.serve_window = Window.of(a, b, sampler.between(a.t, b.t))
            w = rep.serve_window
            say(
                f"serve: window {w.seconds:.0f} s: {w.polls / w.seconds:.1f} polls/s, "
                f"lag p50 {quantile(w.lags, 0.5):.1f} s max {max(w.lags, default=0):.1f} s, "
                f"CPU {pct(w.serve_cpu)}, RSS {w.rss_mb:.0f} MB (peak {w.hwm_mb:.0f})"
            )
            if profiler is not None:
                profiler.wait()
            # 2. idle: nothing due.
            if "idle" not in args.skip:
                self.run_idle(proc, sampler, db_file, log)
        finally:
            sampler.close()
            stop([proc])
            write_samples(sampler.samples, RESULTS / "scale-samples.csv")

    def run_idle(
        self, proc: subprocess.Popen[bytes], sampler: Sampler, db_file: Path, log: Path
    ) -> None:
        args, rep = self.args, self.report
        postpone(db_file, 7200.0)
        deadline = time.monotonic() + 120
        while True:  # let the polls in hand finish (they set their own next poll)
            check_alive(proc, log)
            s = sampler.take(True)
            if s.running == 0 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        postpone(db_file, 7200.0)
        sampler.scraping = False  # no HTTP request while idle: a scrape costs the serve CPU
        time.sleep(args.sample + 2)  # let the last poll's logging and the WAL settle
        a = sampler.take(False)
        time.sleep(args.idle_seconds)
        check_alive(proc, log)
        b = sampler.take(False)
        rep.idle_window = Window.of(a, b, [])
        say(
            f"idle: serve CPU {pct(rep.idle_window.serve_cpu)} of a core over "
            f"{rep.idle_window.seconds:.0f} s"
        )
        sampler.scraping = True

    # 3. workers on PostgreSQL --------------------------------------------------------------
    def run_workers(self) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        args, rep = self.args, self.report
        admin = create_engine(
            "postgresql+psycopg://" + PG_ADMIN.removeprefix("postgresql://"),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
        )
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DATABASE
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {PG_DATABASE}")
        try:
            app = self.make_home("pg-home", f'[database]\nurl = "{url}"\n\n[web]\nlisten = ""\n')
            took = self.add_accounts(app)
            say(f"workers: {args.accounts} accounts added on PostgreSQL in {took:.1f} s")
            engine = create_engine(
                "postgresql+psycopg://" + url.removeprefix("postgresql://"), poolclass=NullPool
            )
            home = app.settings.home
            env = clean_env(SSL_CERT_FILE=str(self.cert_bundle))
            argv = [PYTHON, "-m", "mailhaul", "--home", str(home), "worker"]
            if args.kept:
                self.pg_warm_up(engine, argv, env)
            for k in args.worker_counts:
                set_due(engine, time.time() + 7200)  # nothing due while the workers start
                procs = [spawn(argv, env, self.work / f"worker-{k}-{i}.log") for i in range(k)]
                try:
                    wait_registered(engine, procs, k)
                    time.sleep(args.worker_settle)
                    set_due(engine, time.time())  # then every account at once: a backlog
                    row = self.measure_workers(engine, procs)
                finally:
                    stop(procs)
                rep.workers.append(row)
                say(
                    f"workers: {k} process(es): {row.rate:.1f} polls/s, workers' CPU "
                    f"{pct(row.workers_cpu)}, Dovecot {pct(row.dovecot_cpu)}, PostgreSQL "
                    f"{pct(row.postgres_cpu)}, machine {pct(row.busy)}"
                )
                if row.backlog_left == 0:
                    rep.notes.append(
                        f"{k} worker(s): the backlog ran out after {row.seconds:.0f} s, which "
                        f"ended the window early (more --accounts give a longer window)"
                    )
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
            admin.dispose()

    def pg_warm_up(self, engine: Any, argv: list[str], env: dict[str, str]) -> None:
        """With kept mail: one round by three workers, so every later poll is "nothing new"."""
        from sqlalchemy import text

        procs = [spawn(argv, env, self.work / f"worker-warmup-{i}.log") for i in range(3)]
        try:
            deadline = time.monotonic() + self.args.warmup_max
            while time.monotonic() < deadline:
                for proc in procs:
                    check_alive(proc, self.work / "worker-warmup-0.log")
                with engine.connect() as conn:
                    left = conn.scalar(
                        text("SELECT count(*) FROM accounts WHERE last_run_at IS NULL")
                    )
                if not left:
                    break
                time.sleep(2.0)
        finally:
            stop(procs)

    def measure_workers(self, engine: Any, procs: list[subprocess.Popen[bytes]]) -> WorkerRow:
        from sqlalchemy import text

        def snap() -> tuple[float, ...]:
            return (
                time.monotonic(),
                time.time(),
                sum(cpu_seconds(p.pid) for p in procs),
                session_seconds(self.dovecot_sid),
                command_seconds(b"postgres"),
                busy_seconds(),
                own_seconds(),
            )

        due = text(
            "SELECT count(*) FROM accounts WHERE next_poll_at <= :now AND lease_owner IS NULL"
        )
        a = snap()
        left = -1
        while time.monotonic() < a[0] + self.args.worker_seconds:
            time.sleep(0.5)
            for proc in procs:
                check_alive(proc, self.work / f"worker-{len(procs)}-0.log")
            with engine.connect() as conn:
                left = int(conn.scalar(due, {"now": time.time()}) or 0)
            if left == 0:  # the backlog ran out: the rest of the window would be idle
                break
        b = snap()
        rss = sum(memory_mb(p.pid)[0] for p in procs) / len(procs)
        secs = b[0] - a[0]
        with engine.connect() as conn:
            polls = conn.scalar(
                text("SELECT count(*) FROM runs WHERE finished_at >= :a AND finished_at < :b"),
                {"a": a[1], "b": b[1]},
            )
            errors = conn.scalar(
                text(
                    "SELECT count(*) FROM runs WHERE finished_at >= :a AND finished_at < :b "
                    "AND result <> 'ok'"
                ),
                {"a": a[1], "b": b[1]},
            )
        workers, dove, pg, busy, own = (b[i] - a[i] for i in range(2, 7))
        return WorkerRow(
            processes=len(procs),
            seconds=secs,
            polls=int(polls or 0),
            errors=int(errors or 0),
            workers_cpu=workers / secs,
            dovecot_cpu=dove / secs,
            postgres_cpu=pg / secs,
            other_cpu=max(0.0, busy - workers - dove - pg - own) / secs,
            busy=busy / (secs * NCPU),
            backlog_left=left,
            rss_mb=rss,
        )


# --- helpers ------------------------------------------------------------------------------------


def message(user: str, k: int) -> bytes:
    body = "".join(f"line {n} of a small message kept on the server\r\n" for n in range(40))
    return (
        f"From: sender{k}@example.net\r\nTo: {user}\r\nSubject: kept {k}\r\n"
        f"Message-ID: <kept-{k}-{secrets.token_hex(6)}@example.net>\r\n"
        f"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


def due_times(db_file: Path) -> list[float]:
    """Every active account's next_poll_at (read-only, beside the running service)."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT next_poll_at FROM accounts WHERE active").fetchall()
    finally:
        conn.close()
    return [float(r[0]) for r in rows if r[0] is not None]


def spread_text(due: list[float], interval: int, now: float) -> str:
    """How evenly the next round is spread: the busiest 10 s against a uniform spread."""
    if not due:
        return "–"
    buckets = Counter(int((t - now) // 10) for t in due)
    uniform = len(due) * 10 / interval
    return (
        f"over {max(due) - min(due):.0f} s; busiest 10 s: {max(buckets.values()):,} accounts "
        f"due (spread evenly over the {interval} s interval: {uniform:,.0f})"
    )


def postpone(db_file: Path, seconds: float) -> None:
    """Move every account's next poll `seconds` ahead (a direct UPDATE beside the service)."""
    conn = sqlite3.connect(db_file, timeout=60, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE accounts SET next_poll_at = ?", (time.time() + seconds,))
        conn.execute("COMMIT")
    finally:
        conn.close()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(proc, log)
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=5) as resp,  # noqa: S310 - loopback
        ):
            json.loads(resp.read())
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not answer within {timeout:.0f} s")


def set_due(engine: Any, at: float) -> None:
    """Every account due at `at` (give or take a second, as accounts really are)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE accounts SET next_poll_at = :at - random(), lease_owner = NULL, "
                "lease_expires = NULL"
            ),
            {"at": at},
        )


def wait_registered(engine: Any, procs: list[subprocess.Popen[bytes]], k: int) -> None:
    from sqlalchemy import text

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            pids = set(conn.scalars(text("SELECT pid FROM workers")))
        if all(p.pid in pids for p in procs):
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: {k} worker(s) did not register within 60 s")


def check_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise SystemExit(f"bench: process {proc.args!r} exited ({proc.returncode}):\n{tail}")


def start_py_spy(pid: int, seconds: float, work: Path) -> subprocess.Popen[bytes] | None:
    exe = Path(PYTHON).parent / "py-spy"
    if not exe.exists():
        say("bench: --py-spy needs py-spy in the venv (.venv/bin/pip install py-spy)")
        return None
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "scale-serve.pyspy.txt"
    argv = [str(exe), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50"]
    argv += ["-f", "raw", "-o", str(out), "--nonblocking", "--threads"]
    return spawn(argv, clean_env(), work / "py-spy.log")


def write_samples(samples: list[Sample], path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    cols = list(Sample.__dataclass_fields__)
    lines = [",".join(cols)]
    for s in samples:
        lines.append(
            ",".join("" if getattr(s, c) is None else f"{getattr(s, c):.3f}" for c in cols)
        )
    path.write_text("\n".join(lines) + "\n")


def git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return head + (" + uncommitted changes in src/" if dirty else "")
    return "?"


def machine() -> str:
    return (
        f"{NCPU} cores ({cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}, Dovecot {dovecot_version()}"
    )


# --- report -------------------------------------------------------------------------------------


def render(rep: Report) -> str:
    args = rep.args
    out: list[str] = []
    w = out.append
    w(f"# mailhaul scale benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}\n")
    w(f"- machine: {machine()}")
    source = os.environ.get("PYTHONPATH")
    w(
        f"- mailhaul {mailhaul_version()} "
        + (f"from PYTHONPATH={source}" if source else f"at {git_commit()}")
    )
    w(
        f"- accounts: {args.accounts:,}, {'/'.join(p.upper() for p in args.protocols)} "
        f"alternating, security `{args.security}`"
        + (" (system CAs + test CA in SSL_CERT_FILE)" if args.security == "ssl" else "")
        + f", keep, interval {args.interval} s, on one Dovecot at 127.0.0.1"
    )
    for value in rep.setup.values():
        w(f"- {value}")
    w(
        f"- settings: defaults (`poll.workers` {args.poll_workers or 4}, `poll.per_host_limit` 4, "
        f"log level info); /metrics scraped every {args.sample:g} s during the serve window"
    )
    w(f"- wall time of the bench: {(time.monotonic() - rep.started) / 60:.1f} min\n")
    win = rep.serve_window
    if rep.serve or win:
        w(f"## One `mailhaul serve` (SQLite), {args.accounts:,} accounts\n")
        w("| measure | value |")
        w("|---|---|")
        for key, value in rep.serve.items():
            w(f"| {key} | {value} |")
        if rep.first_round is not None:
            lag = "–" if rep.first_round_lag is None else f"{rep.first_round_lag:.0f} s"
            w(
                f"| warm-up: the first round (every account due at once) | all polled "
                f"{rep.first_round:.0f} s after the start, queue lag under {CAUGHT_UP:g} s "
                f"after {rep.caught_up or 0:.0f} s; peak queue lag {lag} |"
            )
        if win:
            need = args.accounts / args.interval
            w(f"| measured window (after the warm-up) | {win.seconds:.0f} s |")
            note = (
                "; a window right after the warm-up holds fewer while the rounds after the "
                "first one still spread out"
                if max(win.lags, default=0.0) < 30
                else ""
            )
            w(
                f"| polls/s | {win.polls / win.seconds:.1f} (on average the interval needs "
                f"{need:.1f}{note}) |"
            )
            w(f"| failed polls | {win.errors:.0f} |")
            w(
                f"| queue lag p50 / p95 / max | {quantile(win.lags, 0.5):.1f} / "
                f"{quantile(win.lags, 0.95):.1f} / {max(win.lags, default=float('nan')):.1f} s "
                f"({len(win.lags)} samples) |"
            )
            w(f"| serve CPU | {pct(win.serve_cpu)} of one core |")
            w(f"| serve RSS | {win.rss_mb:.0f} MB at the end, peak (VmHWM) {win.hwm_mb:.0f} MB |")
            if win.mean_poll_ms is not None:
                w(f"| mean poll duration | {win.mean_poll_ms:.0f} ms |")
            w(f"| Dovecot CPU | {pct(win.dovecot_cpu)} of one core |")
            w(f"| other processes' CPU | {pct(win.other_cpu)} of one core |")
            w(f"| machine busy | {pct(win.busy)} of {NCPU} cores |")
        w("")
    if rep.idle_window:
        idle = rep.idle_window
        w(f"## Idle `serve`, {args.accounts:,} accounts, none due\n")
        w("| measure | value |")
        w("|---|---|")
        w(f"| serve CPU | {pct(idle.serve_cpu)} of one core over {idle.seconds:.0f} s |")
        w(f"| serve RSS | {idle.rss_mb:.0f} MB |")
        w(f"| other processes' CPU | {pct(idle.other_cpu)} of one core |")
        w("")
    if rep.workers:
        w(f"## `mailhaul worker` processes on PostgreSQL, {args.accounts:,} accounts due\n")
        w(
            "| processes | polls/s | vs 1 | failed | workers' CPU (sum) | Dovecot CPU | "
            "PostgreSQL CPU | other CPU | machine busy | RSS per worker |"
        )
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = rep.workers[0].rate if rep.workers[0].polls else float("nan")
        for r in rep.workers:
            w(
                f"| {r.processes} | {r.rate:.1f} | {r.rate / base:.2f}× | {r.errors} | "
                f"{pct(r.workers_cpu)} | {pct(r.dovecot_cpu)} | {pct(r.postgres_cpu)} | "
                f"{pct(r.other_cpu)} | {pct(r.busy)} | {r.rss_mb:.0f} MB |"
            )
        w(
            f"\nCPU as a share of one core (the machine has {NCPU}); each process runs "
            f"`poll.workers` 4 polls at a time, `poll.per_host_limit` 4; "
            f"{args.worker_seconds:g} s per row after {args.worker_settle:g} s of settling.\n"
        )
    w("## Targets\n")
    w("| target | measured | holds |")
    w("|---|---|:---:|")
    if win:
        p95 = quantile(win.lags, 0.95)
        worst = max(win.lags, default=float("nan"))
        holds = worst < 30 and win.errors == 0
        w(
            f"| {args.accounts:,} accounts on one serve, {args.interval} s interval, queue lag "
            f"< 30 s | lag p95 {p95:.1f} s, max {worst:.1f} s; {win.polls / win.seconds:.1f} "
            f"polls/s; serve CPU {pct(win.serve_cpu)}, RSS {win.rss_mb:.0f} MB | "
            f"{'yes' if holds else 'no'} |"
        )
    if rep.idle_window:
        share = rep.idle_window.serve_cpu
        w(f"| idle serve < 2% of a core | {pct(share)} | {'yes' if share < 0.02 else 'no'} |")
    if rep.workers:
        rates = ", ".join(f"{r.processes}: {r.rate:.1f}" for r in rep.workers)
        w(f"| polls/s from 1 to 3 workers (measured, no target) | {rates} | – |")
    if rep.notes:
        w("\n## Notes\n")
        for note in rep.notes:
            w(f"- {note}")
    return "\n".join(out) + "\n"


# --- main ---------------------------------------------------------------------------------------


def preflight(args: argparse.Namespace) -> None:
    problems = base_problems("the test Dovecot runs mail processes as another user", MAIL_USER)
    if problems:
        raise SystemExit("bench: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=300, help="accounts (and Dovecot users)")
    ap.add_argument("--minutes", type=float, default=2.0, help="measured serve window")
    ap.add_argument("--interval", type=int, default=60, help="every account's interval, s")
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--worker-counts", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--worker-seconds", type=float, default=30.0, help="window per row")
    ap.add_argument("--worker-settle", type=float, default=3.0, help="seconds before a window")
    ap.add_argument("--protocols", nargs="+", choices=("pop3", "imap"), default=["pop3", "imap"])
    ap.add_argument("--security", choices=("ssl", "none"), default="ssl")
    ap.add_argument("--kept", type=int, default=0, help="messages kept in some mailboxes")
    ap.add_argument("--kept-share", type=float, default=0.2, help="share of mailboxes with mail")
    ap.add_argument("--poll-workers", type=int, default=0, help="poll.workers (0: default)")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--warmup-max", type=float, default=900.0, help="longest first round, s")
    ap.add_argument(
        "--skip", nargs="+", choices=("serve", "idle", "workers"), default=[], help="phases"
    )
    ap.add_argument("--py-spy", action="store_true", help="record the serve window (py-spy)")
    ap.add_argument("--keep-work", action="store_true", help="leave the work dir (debugging)")
    args = ap.parse_args(argv)
    preflight(args)
    random.seed()
    interrupt_on_signals()
    work = make_work_dir("mailhaul-scale-")
    bench = ScaleBench(work, args)
    code = 0
    try:
        say(f"bench: work dir {work}")
        bench.start_dovecot()
        if "serve" not in args.skip:
            bench.run_serve()
        if "workers" not in args.skip:
            bench.run_workers()
        write_result("scale.md", render(bench.report))
    except KeyboardInterrupt:
        say("bench: interrupted, cleaning up")
        code = 130
    finally:
        kill_children()
        bench.server.close()
        remove_work_dir(work, args.keep_work)
    return code


if __name__ == "__main__":
    sys.exit(main())
