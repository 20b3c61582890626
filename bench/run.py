"""mailhaul vs fetchmail vs getmail6 vs a minimal client, against a private Dovecot.

    .venv/bin/python bench/run.py [--quick] [--rows ROW ...] [--repeats N] [--profile]

Needs root (the test Dovecot runs mail processes as the user mailhaul-test, and the peers run
as that user), Dovecot, fetchmail and getmail6 (scripts/install-test-deps.sh). Loopback only.
Writes the tables to bench/results/latest.md and prints them. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import imaplib
import json
import os
import platform
import poplib
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import peers
from common import (
    BENCH,
    PYTHON,
    REPO,
    RESULTS,
    base_problems,
    cpu_model,
    dovecot_version,
    interrupt_on_signals,
    mailhaul_version,
    make_work_dir,
    remove_work_dir,
    say,
    start_dovecot,
    write_result,
)
from corpus import Corpus, fill, make_corpus, stage
from procs import Measured, kill_all, launcher_kind, run_measured, user_ids
from verify import verify

sys.path[:0] = [str(REPO / "tests")]
from support.dovecot import MAIL_USER, DovecotServer, Mailbox  # noqa: E402

OWNER = "owner@local.test"
MB = 1_000_000
GETMAIL_STALL_LIMIT = 150.0  # getmail6 6.18.11 sometimes waits out a 180 s timeout
GETMAIL_REPEATS = 2  # getmail6 is the slowest by far: fewer runs of it in a full run
MAX_RUN = 600.0

THROUGHPUT_TOOLS = ("mailhaul-poll", "mailhaul-cli", "fetchmail", "getmail6", "minimal")
TOOL_LABELS = {
    "mailhaul-poll": "mailhaul (in-process Poller.poll)",
    "mailhaul-cli": "mailhaul (process `python -m mailhaul fetch`)",
    "fetchmail": "fetchmail + C MDA (process)",
    "getmail6": "getmail6 Maildir (process)",
    "minimal": "minimal client (process)",
    "minimal-inproc": "minimal client (in-process time)",
    "mailhaul-poll-cold": "mailhaul (first poll in a fresh process)",
    "mailhaul-poll-listed": "mailhaul (in-process, folder listed in full)",
}


@dataclass(frozen=True)
class CorpusSpec:
    key: str
    count: int
    size: int
    jitter: float
    label: str


@dataclass(frozen=True)
class Row:
    key: str
    protocol: str  # pop3 | imap
    tls: bool
    corpus: str  # key of a CorpusSpec
    idle: bool = False  # the "nothing new" poll
    repeats: int | None = None  # runs per cell in a full run (None: the default)

    def label(self, corpora: dict[str, CorpusSpec]) -> str:
        proto = self.protocol.upper() + ("S" if self.tls else "")
        if self.idle:
            return f"{proto} nothing new ({corpora[self.corpus].count} kept)"
        return f"{proto} {corpora[self.corpus].label}"


ALL_ROWS = {
    r.key: r
    for r in (
        Row("pop3-small", "pop3", False, "small"),
        Row("imap-small", "imap", False, "small"),
        Row("pop3-1mb", "pop3", False, "large"),
        Row("imap-1mb", "imap", False, "large"),
        Row("pop3-50mb", "pop3", False, "huge"),
        Row("imap-50mb", "imap", False, "huge"),
        Row("pop3-idle", "pop3", False, "small", idle=True),
        Row("imap-idle", "imap", False, "small", idle=True),
        Row("pop3s-small", "pop3", True, "small", repeats=1),
        Row("imaps-small", "imap", True, "small", repeats=1),
    )
}
DEFAULT_ROWS = [
    "pop3-small",
    "imap-small",
    "pop3-1mb",
    "imap-1mb",
    "pop3-50mb",
    "imap-50mb",
    "pop3-idle",
    "imap-idle",
    "pop3s-small",
    "imaps-small",
]


def corpus_specs(quick: bool) -> dict[str, CorpusSpec]:
    small, large = (300, 30) if quick else (2000, 200)
    return {
        "small": CorpusSpec("small", small, 20_000, 0.2, f"{small} × 20 KB"),
        "large": CorpusSpec("large", large, 1_000_000, 0.1, f"{large} × 1 MB"),
        "huge": CorpusSpec("huge", 1, 50_000_000, 0.0, "1 × 50 MB"),
    }


@dataclass
class Sample:
    seconds: float
    rss_mb: float | None
    check: str
    ok: bool
    messages: int = 0
    nbytes: int = 0
    other_cpu: float = 0.0  # share of the machine's CPU used by unrelated processes


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, row: str, tool: str, sample: Sample) -> None:
        self.samples.setdefault((row, tool), []).append(sample)

    def get(self, row: str, tool: str) -> list[Sample]:
        return self.samples.get((row, tool), [])


class BenchError(RuntimeError):
    pass


# --- the bench ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.quick: bool = args.quick
        self.repeats: int = args.repeats or (1 if self.quick else 3)
        self.idle_polls: int = 3 if self.quick else 7
        self.specs = corpus_specs(self.quick)
        self.results = Results()
        self.uid, self.gid = user_ids(MAIL_USER)
        self.server = DovecotServer(work / "dovecot")
        self.corpora: dict[str, Corpus] = {}
        self.mda, self.mda_kind = peers.build_mda(work)
        self.counter = 0
        self.profiles: list[Path] = []
        self.getmail_walls: dict[str, list[float]] = {}
        self.sid: int | None = None

    # setup ------------------------------------------------------------------------------
    def start(self) -> None:
        self.sid = start_dovecot(self.server, self.work)

    def measure(self, argv: list[str], **kwargs: Any) -> Measured:
        """One tool run: settle the disk first (write back what the last run left dirty),
        then run it, noting the CPU that unrelated processes used meanwhile."""
        os.sync()
        return run_measured(argv, server_session=self.sid, **kwargs)

    def corpus(self, key: str) -> Corpus:
        if key not in self.corpora:
            spec = self.specs[key]
            t0 = time.perf_counter()
            c = make_corpus(spec.key, spec.count, spec.size, spec.jitter)
            stage(c, self.work / "corpus" / key, self.uid, self.gid)
            self.corpora[key] = c
            say(
                f"corpus {key}: {c.count} messages, {c.total_bytes / MB:.1f} MB, "
                f"sha256/{c.digest()} ({time.perf_counter() - t0:.1f} s)"
            )
        return self.corpora[key]

    def mailbox(self, row: Row) -> tuple[Mailbox, Corpus]:
        """A fresh mailbox holding the row's corpus, indexed by Dovecot already."""
        corpus = self.corpus(row.corpus)
        box = self.server.new_mailbox()
        self.counter += 1
        fill(corpus, box.maildir(), str(self.counter))
        prewarm(box, row.protocol)
        return box, corpus

    @property
    def box(self) -> Path:
        """The one Maildir every tool delivers into (emptied between runs): new directories
        land in different places on the disk, and the cost of creating files differs between
        them (README.md, "Figures behind the code"), so a directory per run would make the
        numbers depend on where it landed."""
        return self.work / "box" / "Maildir"

    def empty_box(self) -> None:
        for sub in ("tmp", "new", "cur"):
            folder = self.box / sub
            if not folder.is_dir():
                folder.mkdir(mode=0o700, parents=True)
                os.chown(folder, self.uid, self.gid)
                os.chown(folder.parent, self.uid, self.gid)
                continue
            for entry in os.scandir(folder):
                os.unlink(entry.path)

    def run_dir(self, tool: str, row: Row, *, peer: bool) -> Path:
        """A run's own directory (config, logs, home); its `Maildir` links to the box."""
        self.counter += 1
        d = self.work / "runs" / f"{self.counter:04d}-{row.key}-{tool}"
        d.mkdir(parents=True)
        self.empty_box()
        (d / "Maildir").symlink_to(self.box)
        if peer:
            (d / "home").mkdir(mode=0o700)
            for path in (d, d / "home"):
                os.chown(path, self.uid, self.gid)
        return d

    def port(self, row: Row) -> int:
        p = self.server.ports
        if row.protocol == "pop3":
            return p.pop3s if row.tls else p.pop3
        return p.imaps if row.tls else p.imap

    def source(self, row: Row, box: Mailbox) -> peers.Source:
        return peers.Source(
            row.protocol, row.tls, self.port(row), box.user, box.password, self.server.ca_path
        )

    def mailhaul_home(self, row: Row, box: Mailbox, d: Path, *, keep: bool) -> tuple[Path, int]:
        """A mailhaul home with one account for `box`, made with the CLI in fresh processes
        (so the bench never mixes its own import of mailhaul with the code under test)."""
        home = d / "home"
        home.mkdir(mode=0o700)
        (home / "mailhaul.toml").write_text(
            f'[delivery]\nmaildir_path = "{d / "Maildir"}"\n\n[poll]\ntimeout = 120\n'
        )
        base = [PYTHON, "-m", "mailhaul", "--home", str(home)]
        add = [*base, "account", "add", "--owner", OWNER, "--protocol", row.protocol]
        add += ["--host", "localhost" if row.tls else "127.0.0.1", "--port", str(self.port(row))]
        add += ["--username", box.user, "--password-stdin"]
        add += ["--security", "ssl", "--ca-file", str(self.server.ca_path)] if row.tls else []
        add += ["--security", "none"] if not row.tls else []
        add += ["--keep"] if keep else []
        for argv, data in (([*base, "init"], ""), (add, box.password)):
            proc = subprocess.run(
                argv, input=data, capture_output=True, text=True, env=clean_env(), check=False
            )
            if proc.returncode != 0:
                raise BenchError(f"{' '.join(argv[3:6])}: {proc.stdout} {proc.stderr}"[-2000:])
        return home, int(proc.stdout.split()[-1])

    # one run of one tool -------------------------------------------------------------------
    def run_mailhaul_poll(
        self, home: Path, account: int, d: Path, polls: int = 1, list_in_full: bool = False
    ) -> tuple[Measured, list[dict[str, Any]]]:
        argv = [PYTHON, str(BENCH / "mailhaul_worker.py"), str(home), str(account)]
        argv += ["--polls", str(polls)] + (["--list-in-full"] if list_in_full else [])
        m = self.measure(argv, log_dir=d / f"log-poll-{time.monotonic_ns()}", env=clean_env())
        if m.returncode != 0:
            raise BenchError(f"mailhaul worker failed ({m.returncode}): {m.stderr[-2000:]}")
        polls_out: list[dict[str, Any]] = json.loads(m.stdout.strip().splitlines()[-1])["polls"]
        for p in polls_out:
            if p["result"] != "ok":
                raise BenchError(f"mailhaul poll: {p['result']}: {p['error']}")
        return m, polls_out

    def run_mailhaul_cli(self, home: Path, account: int, d: Path) -> Measured:
        argv = [PYTHON, "-m", "mailhaul", "--home", str(home), "fetch", str(account), "--json"]
        m = self.measure(argv, log_dir=d / f"log-cli-{time.monotonic_ns()}", env=clean_env())
        if m.returncode != 0:
            raise BenchError(f"mailhaul fetch failed ({m.returncode}): {m.stdout} {m.stderr}")
        return m

    def run_minimal(
        self, row: Row, box: Mailbox, d: Path, *, keep: bool
    ) -> tuple[Measured, dict[str, float]]:
        argv = [PYTHON, str(BENCH / "minimal.py"), row.protocol]
        argv += ["localhost" if row.tls else "127.0.0.1", str(self.port(row)), box.user]
        argv += [str(d / "Maildir")]
        if row.tls:
            argv += ["--tls", str(self.server.ca_path)]
        if keep:
            argv += ["--keep", str(d / "state")]
        m = self.measure(
            argv,
            log_dir=d / f"log-{time.monotonic_ns()}",
            env=clean_env(),
            stdin_data=box.password.encode() + b"\n",
        )
        if m.returncode != 0:
            raise BenchError(f"minimal client failed ({m.returncode}): {m.stderr[-2000:]}")
        out: dict[str, float] = json.loads(m.stdout.strip().splitlines()[-1])
        return m, out

    def run_peer(self, tool: str, row: Row, box: Mailbox, d: Path, *, keep: bool) -> Measured:
        src = self.source(row, box)
        if tool == "fetchmail":
            inv = peers.fetchmail(
                src, d / "home", d / "Maildir", self.mda, keep=keep, mail_user=MAIL_USER
            )
            ok_codes: tuple[int, ...] = (0, 1) if keep else (0,)  # 1: no new mail
            limit = MAX_RUN
        else:
            inv = peers.getmail(src, d / "home", d / "Maildir", keep=keep)
            ok_codes = (0,)
            walls = self.getmail_walls.get(row.key)
            limit = min(GETMAIL_STALL_LIMIT, max(20.0, 3 * max(walls))) if walls else 150.0
        for path in (d / "home").iterdir():
            os.chown(path, self.uid, self.gid)
        m = self.measure(
            inv.argv,
            log_dir=d / "logs" / str(time.monotonic_ns()),
            env=inv.env,
            user=MAIL_USER,
            cwd=inv.cwd,
            timeout=limit,
        )
        if m.timed_out:
            raise Stalled(f"{tool} killed after {limit:.0f} s")
        if m.returncode not in ok_codes:
            raise BenchError(f"{tool} exited {m.returncode}: {(m.stdout + m.stderr)[-2000:]}")
        if tool == "getmail6":
            self.getmail_walls.setdefault(row.key, []).append(m.wall)
        return m

    # rows -----------------------------------------------------------------------------------
    def throughput(self, row: Row, tool: str) -> None:
        for attempt in range(3):
            try:
                self._throughput_once(row, tool)
                return
            except Stalled as exc:
                note = f"{row.key}: {exc} (the getmail6 stall): run dropped"
                self.results.notes.append(note)
                say(note)
                if attempt == 2:
                    raise BenchError(f"{tool} stalled three times on {row.key}") from exc

    def _throughput_once(self, row: Row, tool: str) -> None:
        box, corpus = self.mailbox(row)
        d = self.run_dir(tool, row, peer=tool in ("fetchmail", "getmail6"))
        extra: Sample | None = None
        try:
            if tool == "mailhaul-poll":
                home, account = self.mailhaul_home(row, box, d, keep=False)
                m, polls = self.run_mailhaul_poll(home, account, d)
                seconds = float(polls[0]["seconds"])
            elif tool == "mailhaul-cli":
                home, account = self.mailhaul_home(row, box, d, keep=False)
                m = self.run_mailhaul_cli(home, account, d)
                seconds = m.wall
            elif tool == "minimal":
                m, out = self.run_minimal(row, box, d, keep=False)
                seconds = m.wall
                extra = Sample(out["seconds"], rss(m), "", True, other_cpu=m.other_cpu)
            else:
                m = self.run_peer(tool, row, box, d, keep=False)
                seconds = m.wall
        except Stalled:
            self.keep_or_remove(d, False)
            raise
        except BenchError as exc:
            self.results.add(row.key, tool, Sample(float("nan"), None, f"error: {exc}", False))
            say(f"  {tool}: ERROR {exc}")
            self.keep_or_remove(d, False)
            return
        verdict = verify(d / "Maildir", corpus, tool.split("-")[0])
        left = count_files(box.maildir())
        check = verdict.summary() + (f"; {left} left on the server" if left else "")
        sample = Sample(
            seconds, rss(m), check, verdict.complete and not left, other_cpu=m.other_cpu
        )
        sample.messages, sample.nbytes = corpus.count, corpus.total_bytes
        self.results.add(row.key, tool, sample)
        if extra is not None:
            extra.check, extra.ok = check, sample.ok
            extra.messages, extra.nbytes = corpus.count, corpus.total_bytes
            self.results.add(row.key, "minimal-inproc", extra)
        self.keep_or_remove(d, verdict.ok and not left)
        say(
            f"  {tool:14s} {seconds:8.3f} s  {corpus.count / seconds:9.1f} msg/s  "
            f"{corpus.total_bytes / MB / seconds:7.1f} MB/s  rss {sample.rss_mb:6.1f} MB  "
            f"other CPU {100 * m.other_cpu:3.0f}%  {check}"
        )

    def idle(self, row: Row, tool: str) -> None:
        """The "nothing new" poll: retrieve everything with keep, then time polls."""
        for attempt in range(3):
            try:
                self._idle_once(row, tool)
                return
            except Stalled as exc:
                note = f"{row.key}: {exc} (the getmail6 stall): run dropped"
                self.results.notes.append(note)
                say(note)
                if attempt == 2:
                    raise BenchError(f"{tool} stalled three times on {row.key}") from exc

    def _idle_once(self, row: Row, tool: str) -> None:
        box, corpus = self.mailbox(row)
        d = self.run_dir(tool, row, peer=tool in ("fetchmail", "getmail6"))
        n = self.idle_polls
        name = tool.split("-")[0]
        try:
            if tool == "mailhaul":
                home, account = self.mailhaul_home(row, box, d, keep=True)
                _m, first = self.run_mailhaul_poll(home, account, d)
                self._check_initial(d, corpus, name, row, tool, first[0]["fetched"])
                for _ in range(n):
                    m = self.run_mailhaul_cli(home, account, d)
                    fetched = json.loads(m.stdout)[0]["fetched"]
                    self._idle_sample(row, "mailhaul-cli", m.wall, m, fetched)
                m, polls = self.run_mailhaul_poll(home, account, d, polls=n + 1)
                for i, p in enumerate(polls):
                    label = "mailhaul-poll-cold" if i == 0 else "mailhaul-poll"
                    self._idle_sample(row, label, float(p["seconds"]), m, p["fetched"])
                if row.protocol == "imap":  # what the poll costs when STATUS cannot be used
                    m, polls = self.run_mailhaul_poll(home, account, d, n + 1, list_in_full=True)
                    for p in polls[1:]:
                        sample = float(p["seconds"])
                        self._idle_sample(row, "mailhaul-poll-listed", sample, m, p["fetched"])
            elif tool == "minimal":
                _m, out = self.run_minimal(row, box, d, keep=True)
                self._check_initial(d, corpus, name, row, tool, out["fetched"])
                for _ in range(n):
                    m, out = self.run_minimal(row, box, d, keep=True)
                    self._idle_sample(row, "minimal", m.wall, m, out["fetched"])
                    self._idle_sample(row, "minimal-inproc", out["seconds"], m, out["fetched"])
            else:
                self.run_peer(tool, row, box, d, keep=True)
                self._check_initial(d, corpus, name, row, tool, None)
                for _ in range(n):
                    m = self.run_peer(tool, row, box, d, keep=True)
                    fetched = count_files(d / "Maildir") - corpus.count
                    self._idle_sample(row, tool, m.wall, m, fetched)
        except Stalled:
            self.keep_or_remove(d, False)
            raise
        except BenchError as exc:
            self.results.add(row.key, tool, Sample(float("nan"), None, f"error: {exc}", False))
            say(f"  {tool}: ERROR {exc}")
            self.keep_or_remove(d, False)
            return
        verdict = verify(d / "Maildir", corpus, name)
        if not verdict.complete:
            note = f"{row.key}: {tool} Maildir after the polls: {verdict.summary()}"
            self.results.notes.append(note)
        labels = [tool] if tool in ("fetchmail", "getmail6") else []
        labels += ["mailhaul-cli", "mailhaul-poll", "minimal", "minimal-inproc"]
        for label in labels:
            got = self.results.get(row.key, label)
            if got and label.split("-")[0] == name:
                ms = statistics.median(s.seconds for s in got) * 1000
                say(f"  {label:18s} median {ms:8.1f} ms per poll over {len(got)} polls")
        self.keep_or_remove(d, verdict.complete)

    def _check_initial(
        self, d: Path, corpus: Corpus, name: str, row: Row, tool: str, fetched: object
    ) -> None:
        verdict = verify(d / "Maildir", corpus, name)
        if not verdict.complete:
            note = f"{row.key}: {tool} keep retrieval before the polls: {verdict.summary()}"
            self.results.notes.append(note)
            say("  " + note)

    def _idle_sample(
        self, row: Row, label: str, seconds: float, m: Measured, fetched: object
    ) -> None:
        ok = fetched == 0
        self.results.add(
            row.key,
            label,
            Sample(
                seconds, rss(m), "ok" if ok else f"fetched {fetched}", ok, other_cpu=m.other_cpu
            ),
        )

    def repeats_of(self, row: Row) -> int:
        if self.args.repeats or self.quick or row.repeats is None:
            return self.repeats
        return row.repeats

    def keep_or_remove(self, d: Path, ok: bool) -> None:
        """Remove a run's directory (kept with --keep-work when the check failed)."""
        if ok or not self.args.keep_work:
            shutil.rmtree(d, ignore_errors=True)
        else:
            shutil.copytree(self.box, d / "Maildir.kept")
        self.empty_box()

    def profile(self, row: Row) -> Path | None:
        """cProfile of mailhaul's Poller.poll on this row (an extra, untimed run)."""
        box, _corpus = self.mailbox(row)
        d = self.run_dir("profile", row, peer=False)
        home, account = self.mailhaul_home(row, box, d, keep=row.idle)
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"profile-{row.key}.txt"
        argv = [PYTHON, str(BENCH / "mailhaul_worker.py"), str(home), str(account)]
        polls = self.idle_polls + 1 if row.idle else 1
        if row.idle:
            # the first poll retrieves everything; profile the polls that find nothing new
            run_measured([*argv, "--polls", "1"], log_dir=d / "log-setup", env=clean_env())
        m = run_measured(
            [*argv, "--polls", str(polls), "--profile", str(out)],
            log_dir=d / "log-profile",
            env=clean_env(),
        )
        self.keep_or_remove(d, True)
        if m.returncode != 0:
            say(f"  profile of {row.key} failed: {m.stderr[-500:]}")
            return None
        self.profiles.append(out)
        return out

    def run(self, rows: list[Row]) -> None:
        for row in rows:
            repeats = 1 if row.idle else self.repeats_of(row)
            say(f"== {row.label(self.specs)} ({row.key}), {repeats} repeat(s)")
            wanted = self.args.tools or ("mailhaul", "fetchmail", "getmail6", "minimal")
            tools: tuple[str, ...] = (
                ("mailhaul", "fetchmail", "getmail6", "minimal") if row.idle else THROUGHPUT_TOOLS
            )
            tools = tuple(t for t in tools if t.split("-")[0] in wanted)
            for rep in range(repeats):
                if rep:
                    say(f"-- repeat {rep + 1}")
                for tool in tools:
                    if tool == "getmail6" and rep >= GETMAIL_REPEATS:
                        continue
                    if row.idle:
                        self.idle(row, tool)
                    else:
                        self.throughput(row, tool)
            if self.args.profile:
                path = self.profile(row)
                if path:
                    say(f"  profile: {path}")


class Stalled(BenchError):
    pass


# --- helpers -----------------------------------------------------------------------------------


def rss(m: Measured) -> float:
    return m.maxrss_kb / 1024


def clean_env() -> dict[str, str]:
    """The environment of a measured process: no MAILHAUL_* settings, and bytecode allowed.

    An installed mailhaul has bytecode; an editable one in a shell with
    PYTHONDONTWRITEBYTECODE=1 would compile every module from source on every run
    (~0.4 s), a cost no user pays. ``compile_bytecode()`` writes it once before any run.
    """
    env = common.clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_bytecode() -> None:
    """Write the .pyc files of mailhaul's sources, as installing a package does."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "src")], check=True)


def count_files(maildir: Path) -> int:
    return sum(len(os.listdir(maildir / s)) for s in ("new", "cur") if (maildir / s).is_dir())


def prewarm(box: Mailbox, protocol: str) -> None:
    """Let Dovecot index the new mailbox (UIDs, sizes) before a tool connects, as a server
    whose mail arrived earlier would have; every tool then starts from the same state."""
    if protocol == "imap":
        with imaplib.IMAP4("127.0.0.1", box.ports.imap, timeout=60) as imap:
            imap.login(box.user, box.password)
            imap.select("INBOX", readonly=True)
            imap.fetch("1:*", "(UID RFC822.SIZE)")
            imap.logout()
    else:
        pop = poplib.POP3("127.0.0.1", box.ports.pop3, timeout=60)
        try:
            pop.user(box.user)
            pop.pass_(box.password)
            pop.list()
            pop.uidl()
        finally:
            pop.quit()


def med(samples: list[Sample]) -> float:
    good = [s.seconds for s in samples if s.seconds == s.seconds]  # not NaN
    return statistics.median(good) if good else float("nan")


def med_rss(samples: list[Sample]) -> float:
    good = [s.rss_mb for s in samples if s.rss_mb is not None]
    return statistics.median(good) if good else float("nan")


def other(samples: list[Sample]) -> str:
    """Median share of the machine's CPU that unrelated processes used during the runs."""
    return f"{100 * statistics.median(s.other_cpu for s in samples):.0f}%"


def checks(samples: list[Sample]) -> str:
    seen: list[str] = []
    for s in samples:
        if s.check not in seen:
            seen.append(s.check)
    return "; ".join(seen)


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x != x else f"{x:,.{digits}f}"


def machine() -> dict[str, str]:
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return {
        "cpu": f"{os.cpu_count()} cores, {cpu_model()}",
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "dovecot": dovecot_version(),
    }


# --- report ------------------------------------------------------------------------------------


def report(bench: Bench, rows: list[Row], started: float) -> str:
    res, specs = bench.results, bench.specs
    vers = peers.versions()
    info = machine()
    out: list[str] = []
    w = out.append
    w(f"# mailhaul benchmark — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}\n")
    w(
        f"- machine: {info['cpu']}, {info['memory']} RAM, {info['os']}\n"
        f"- versions: mailhaul {mailhaul_version()} (Python {info['python']}), "
        f"fetchmail {vers['fetchmail']}, getmail6 {vers['getmail6']}, Dovecot {info['dovecot']}\n"
        f"- mode: {'--quick' if bench.quick else 'full'}, {bench.repeats} run(s) per cell "
        f"(medians; getmail6 at most {GETMAIL_REPEATS}, TLS rows 1 in a full run), "
        f'{bench.idle_polls} polls per "nothing new" cell; '
        f"fetchmail MDA: {bench.mda_kind}; peak RSS by {launcher_kind()}\n"
        f"- corpora: "
        + ", ".join(
            f"{k}: {c.count} msgs, {c.total_bytes / MB:.1f} MB, sha256/{c.digest()}"
            for k, c in bench.corpora.items()
        )
        + "\n"
        f"- every tool: loopback, plain (or implicit TLS on the `s` rows), delete after "
        f"retrieval, Maildir delivery with fsync per message; MB = 10^6 bytes; peak RSS = "
        f"ru_maxrss of the retrieving process\n"
        f"- wall time of the whole run: {(time.monotonic() - started) / 60:.1f} min; "
        f'"other CPU" = share of the machine\'s CPU used during a run by processes other than '
        f"the tool and Dovecot (e.g. test suites on a shared machine): high values mean noisy "
        f"numbers\n"
    )
    thr = [r for r in rows if not r.idle]
    idle = [r for r in rows if r.idle]
    tools = [*THROUGHPUT_TOOLS, "minimal-inproc"]
    if thr:
        w("\n## Throughput: messages/s (MB/s, peak RSS MB), medians\n")
        w("| row | " + " | ".join(TOOL_LABELS[t] for t in tools) + " |")
        w("|---|" + "---:|" * len(tools))
        for r in thr:
            corpus = bench.corpora.get(r.corpus)
            if corpus is None:
                continue
            cells = []
            for t in tools:
                s = med(res.get(r.key, t))
                if s != s:
                    cells.append("–")
                    continue
                cells.append(
                    f"**{corpus.count / s:,.1f}** ({corpus.total_bytes / MB / s:,.1f} MB/s, "
                    f"{fmt(med_rss(res.get(r.key, t)))} MB)"
                )
            w(f"| {r.label(specs)} | " + " | ".join(cells) + " |")
        w("\n### Details\n")
        w("| row | tool | runs | wall s | msgs/s | MB/s | peak RSS MB | other CPU | check |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for r in thr:
            corpus = bench.corpora.get(r.corpus)
            if corpus is None:
                continue
            for t in tools:
                got = res.get(r.key, t)
                if not got:
                    continue
                s = med(got)
                w(
                    f"| {r.label(specs)} | {t} | {len(got)} | {fmt(s, 3)} | "
                    f"{fmt(corpus.count / s)} | {fmt(corpus.total_bytes / MB / s)} | "
                    f"{fmt(med_rss(got))} | {other(got)} | {checks(got)} |"
                )
    if idle:
        w('\n## "Nothing new" poll: milliseconds per poll, medians\n')
        w("| row | tool | polls | median ms | min ms | max ms | peak RSS MB | other CPU | check |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---|")
        labels = [
            "mailhaul-poll",
            "mailhaul-poll-cold",
            "mailhaul-poll-listed",
            "mailhaul-cli",
            "fetchmail",
            "getmail6",
            "minimal",
            "minimal-inproc",
        ]
        for r in idle:
            for t in labels:
                got = res.get(r.key, t)
                if not got:
                    continue
                secs = [s.seconds for s in got if s.seconds == s.seconds]
                w(
                    f"| {r.label(specs)} | {TOOL_LABELS[t]} | {len(got)} | "
                    f"{fmt(med(got) * 1000)} | {fmt(min(secs, default=float('nan')) * 1000)} | "
                    f"{fmt(max(secs, default=float('nan')) * 1000)} | {fmt(med_rss(got))} | "
                    f"{other(got)} | {checks(got)} |"
                )
    w("\n## Targets\n")
    w("| target | row | measured | holds |")
    w("|---|---|---|:---:|")
    for line in targets(bench, rows):
        w(line)
    if res.notes:
        w("\n## Notes\n")
        for note in res.notes:
            w(f"- {note}")
    if bench.profiles:
        w("\n## Profiles (cProfile of Poller.poll)\n")
        for p in bench.profiles:
            w(f"- {p.relative_to(REPO)}")
    return "\n".join(out) + "\n"


def targets(bench: Bench, rows: list[Row]) -> Iterator[str]:
    res, specs = bench.results, bench.specs

    def rate(row: Row, tool: str) -> float:
        s = med(res.get(row.key, tool))
        corpus = bench.corpora.get(row.corpus)
        return corpus.count / s if corpus and s == s else float("nan")

    def line(target: str, row: Row, text: str, ok: bool | None) -> str:
        mark = "–" if ok is None else ("yes" if ok else "**NO**")
        return f"| {target} | {row.label(specs)} | {text} | {mark} |"

    def cmp(a: float, b: float, need: float) -> bool | None:
        return None if a != a or b != b else a / b >= need

    for row in rows:
        if row.idle:
            continue
        if row.corpus == "small":
            for t in ("mailhaul-cli", "mailhaul-poll"):
                a, b = rate(row, t), rate(row, "fetchmail")
                yield line(
                    "≥ 5× fetchmail msgs/s (small mail)",
                    row,
                    f"{t}: {fmt(a)} vs {fmt(b)} = {fmt(a / b, 2)}×",
                    cmp(a, b, 5.0),
                )
        for t, m in (("mailhaul-cli", "minimal"), ("mailhaul-poll", "minimal-inproc")):
            a, b = rate(row, t), rate(row, m)
            yield line(
                "≥ 80% of the minimal client",
                row,
                f"{t} vs {m}: {fmt(a)} vs {fmt(b)} = {fmt(100 * a / b, 0)}%",
                cmp(a, b, 0.8),
            )
        a = rate(row, "mailhaul-cli")
        f, g = rate(row, "fetchmail"), rate(row, "getmail6")
        ok_f, ok_g = cmp(a, f, 1.0 + 1e-9), cmp(a, g, 1.0 + 1e-9)
        both = None if ok_f is None or ok_g is None else ok_f and ok_g
        yield line(
            "faster than both peers",
            row,
            f"mailhaul-cli {fmt(a)} vs fetchmail {fmt(f)}, getmail6 {fmt(g)} msgs/s",
            both,
        )
        if row.corpus == "huge":
            for t in ("mailhaul-poll", "mailhaul-cli"):
                r = med_rss(res.get(row.key, t))
                yield line(
                    "50 MB message: peak RSS < 100 MB",
                    row,
                    f"{t}: {fmt(r)} MB",
                    None if r != r else r < 100,
                )
    for row in rows:
        if not row.idle:
            continue
        pairs = [("mailhaul-cli", "minimal"), ("mailhaul-poll", "minimal-inproc")]
        if res.get(row.key, "mailhaul-poll-listed"):
            pairs.append(("mailhaul-poll-listed", "minimal-inproc"))
        for t, m in pairs:
            a, b = med(res.get(row.key, t)) * 1000, med(res.get(row.key, m)) * 1000
            ok = None if a != a or b != b else a <= b * 1.10
            yield line(
                '"nothing new" poll as fast as the minimal client (≤ +10%)',
                row,
                f"{t} {fmt(a)} ms vs {m} {fmt(b)} ms = {fmt(a / b, 2)}×",
                ok,
            )


# --- main --------------------------------------------------------------------------------------


def preflight() -> None:
    problems = base_problems("the test Dovecot and the peers' user switch need it", MAIL_USER)
    for binary in (peers.FETCHMAIL, peers.GETMAIL):
        if not Path(binary).exists():
            problems.append(f"{binary} is missing: run scripts/install-test-deps.sh")
    if problems:
        raise SystemExit("bench: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller corpus, one run per cell")
    ap.add_argument(
        "--rows", nargs="+", choices=sorted(ALL_ROWS), metavar="ROW", help="rows to run"
    )
    ap.add_argument("--repeats", type=int, help="runs per cell (default 3, --quick 1)")
    ap.add_argument(
        "--tools",
        nargs="+",
        choices=("mailhaul", "fetchmail", "getmail6", "minimal"),
        help="tools to run (default: all)",
    )
    ap.add_argument(
        "--profile", action="store_true", help="also cProfile mailhaul on each row (untimed)"
    )
    ap.add_argument("--keep-work", action="store_true", help="leave the temp dir (debugging)")
    args = ap.parse_args(argv)
    preflight()
    rows = [ALL_ROWS[k] for k in (args.rows or DEFAULT_ROWS)]
    started = time.monotonic()
    interrupt_on_signals()
    work = make_work_dir("mailhaul-bench-")  # Maildirs, Dovecot's homes
    bench: Bench | None = None
    code = 0
    try:
        compile_bytecode()
        bench = Bench(work, args)
        bench.start()
        say(f"bench: work dir {work}, Dovecot ports {bench.server.ports}")
        bench.run(rows)
        write_result("latest.md", report(bench, rows, started))
    except KeyboardInterrupt:
        say("bench: interrupted, cleaning up")
        code = 130
    finally:
        kill_all()
        if bench is not None:
            bench.server.close()
        remove_work_dir(work, args.keep_work)
    return code


if __name__ == "__main__":
    sys.exit(main())
