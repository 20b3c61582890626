"""What the spam and virus checks cost: mailhaul with checks off, with clamd, with rspamd and
with both, against a private Dovecot, rspamd and clamd (tests/support), loopback only.

    .venv/bin/python bench/filters.py [--quick] [--repeats N] [--keep]

Rows: POP3 N × 20 KB with each set of checks (messages a second, and the cost a message
adds against checks off), and POP3 1 × 50 MB through both checks (`filter.max_size` raised
to its 50 MiB ceiling so that it is scanned): its peak RSS shows that the message streams
through spool and scanners.
Each run is `bench/mailhaul_worker.py` in a fresh process, timed around `Poller.poll()`;
peak RSS is that process's `ru_maxrss`. Needs root (as bench/run.py). Writes
bench/results/filters-latest.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BENCH,
    PYTHON,
    REPO,
    base_problems,
    cpu_model,
    interrupt_on_signals,
    mailhaul_version,
    make_work_dir,
    remove_work_dir,
    say,
    write_result,
)
from corpus import Corpus, fill, make_corpus, stage
from procs import kill_all, run_measured, user_ids
from run import clean_env, compile_bytecode, prewarm
from verify import verify

sys.path[:0] = [str(REPO / "tests")]
from support.dovecot import MAIL_USER, DovecotServer  # noqa: E402
from support.scanners import ClamdServer, RspamdServer  # noqa: E402

OWNER = "owner@local.test"
MB = 1_000_000
CHECKS = {  # label: (mailhaul account add flags)
    "checks off": (),
    "clamd": ("--antivirus", "quarantine"),
    "rspamd": ("--antispam", "tag"),
    "rspamd + clamd": ("--antispam", "tag", "--antivirus", "quarantine"),
}


class BenchError(RuntimeError):
    pass


@dataclass
class Cell:
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


class FilterBench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.repeats: int = args.repeats or (1 if args.quick else 3)
        self.small = 200 if args.quick else 1000
        self.uid, self.gid = user_ids(MAIL_USER)
        self.server = DovecotServer(work / "dovecot")
        self.rspamd = RspamdServer(work / "rspamd")
        self.clamd = ClamdServer(work / "clamd")
        self.counter = 0

    def start(self) -> None:
        (self.work / "dovecot").mkdir(mode=0o711)
        os.chmod(self.work / "dovecot", 0o711)  # noqa: S103 - the mail user traverses it
        self.server.start()
        self.rspamd.start()
        self.clamd.start()

    def stop(self) -> None:
        for daemon in (self.rspamd, self.clamd):
            daemon.stop()
        self.server.close()

    def corpus(self, key: str, count: int, size: int) -> Corpus:
        corpus = make_corpus(key, count, size, 0.2 if count > 1 else 0.0)
        stage(corpus, self.work / "corpus" / key, self.uid, self.gid)
        return corpus

    def home(self, d: Path, port: int, user: str, password: str, flags: tuple[str, ...]) -> int:
        home = d / "home"
        home.mkdir(mode=0o700, parents=True)
        (home / "mailhaul.toml").write_text(
            f'[delivery]\nmaildir_path = "{d / "Maildir"}"\n\n[poll]\ntimeout = 120\n\n'
            f'[filter]\nrspamd = "{self.rspamd.url}"\nclamd = "{self.clamd.address}"\n'
            f"max_size = {50 * 1024 * 1024}\ntimeout = 120\n"
        )
        base = [PYTHON, "-m", "mailhaul", "--home", str(home)]
        add = [*base, "account", "add", "--owner", OWNER, "--protocol", "pop3"]
        add += ["--host", "127.0.0.1", "--port", str(port), "--security", "none"]
        add += ["--username", user, "--password-stdin", *flags]
        for argv, data in (([*base, "init"], ""), (add, password)):
            proc = subprocess.run(
                argv, input=data, capture_output=True, text=True, env=clean_env(), check=False
            )
            if proc.returncode != 0:
                raise BenchError(f"{' '.join(argv[3:6])}: {proc.stdout} {proc.stderr}"[-2000:])
        return int(proc.stdout.split()[-1])

    def run_once(self, corpus: Corpus, flags: tuple[str, ...], cell: Cell) -> None:
        box = self.server.new_mailbox()
        self.counter += 1
        fill(corpus, box.maildir(), str(self.counter))
        prewarm(box, "pop3")
        d = self.work / "runs" / f"{self.counter:04d}"
        (d / "Maildir").mkdir(parents=True)
        account = self.home(d, self.server.ports.pop3, box.user, box.password, flags)
        argv = [PYTHON, str(BENCH / "mailhaul_worker.py"), str(d / "home"), str(account)]
        m = run_measured(argv, log_dir=d / "log", env=clean_env(), timeout=1200)
        if m.returncode != 0:
            raise BenchError(f"mailhaul worker failed ({m.returncode}): {m.stderr[-2000:]}")
        (poll,) = json.loads(m.stdout.strip().splitlines()[-1])["polls"]
        if poll["result"] != "ok" or poll["fetched"] != corpus.count:
            raise BenchError(f"poll: {poll['result']}, {poll['fetched']}: {poll['error']}")
        verdict = verify(d / "Maildir", corpus, "mailhaul")
        cell.seconds.append(float(poll["seconds"]))
        cell.rss_mb.append(m.maxrss_kb / 1024)
        cell.checks.append(verdict.summary())
        say(
            f"  {' '.join(flags) or 'off':40s} {poll['seconds']:8.3f} s  "
            f"{corpus.count / poll['seconds']:8.1f} msg/s  rss {m.maxrss_kb / 1024:6.1f} MB  "
            f"{verdict.summary()}"
        )

    def run(self) -> str:
        small = self.corpus("small", self.small, 20_000)
        huge = self.corpus("huge", 1, 50 * MB)
        cells: dict[str, Cell] = {}
        for repeat in range(self.repeats):
            say(f"round {repeat + 1}/{self.repeats}: POP3 {small.count} × 20 KB")
            for label, flags in CHECKS.items():
                self.run_once(small, flags, cells.setdefault(label, Cell()))
        say("POP3 1 × 50 MB, rspamd + clamd")
        big = Cell()
        for _ in range(self.repeats):
            self.run_once(huge, CHECKS["rspamd + clamd"], big)
        return self.report(small, cells, big)

    def report(self, small: Corpus, cells: dict[str, Cell], big: Cell) -> str:
        base = statistics.median(cells["checks off"].seconds)
        lines = [
            "# What the spam and virus checks cost",
            "",
            f"mailhaul {mailhaul_version()}, {cpu_model()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; medians of "
            f"{self.repeats} run(s); rspamd and clamd on this machine (loopback, unix socket).",
            "",
            f"| POP3 {small.count} × 20 KB | seconds | msg/s | added per message | peak RSS |"
            " check |",
            "|---|---|---|---|---|---|",
        ]
        for label, cell in cells.items():
            seconds = statistics.median(cell.seconds)
            added = (seconds - base) / small.count * 1e3
            lines.append(
                f"| {label} | {seconds:.2f} | {small.count / seconds:.0f} | "
                f"{'—' if label == 'checks off' else f'{added:.2f} ms'} | "
                f"{statistics.median(cell.rss_mb):.1f} MB | {', '.join(sorted(set(cell.checks)))} |"
            )
        seconds = statistics.median(big.seconds)
        lines += [
            "",
            "| POP3 1 × 50 MB, rspamd + clamd | seconds | MB/s | peak RSS | check |",
            "|---|---|---|---|---|",
            f"| scanned (filter.max_size 50 MiB) | {seconds:.2f} | {50 / seconds:.1f} | "
            f"{max(big.rss_mb):.1f} MB (max) | {', '.join(sorted(set(big.checks)))} |",
            "",
        ]
        return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 small messages, one round")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    problems = base_problems("the test Dovecot runs mail processes as", MAIL_USER)
    if problems:
        sys.exit("bench: " + "; ".join(problems))
    interrupt_on_signals()
    compile_bytecode()
    work = make_work_dir("mailhaul-filters-")
    bench = FilterBench(work, args)
    ok = False
    try:
        bench.start()
        write_result("filters-latest.md", bench.run())
        ok = True
    finally:
        kill_all()
        bench.stop()
        remove_work_dir(work, args.keep or not ok)


if __name__ == "__main__":
    main()
