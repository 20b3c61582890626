"""Push (IMAP IDLE, issue 15): thousands of watched accounts on one `mailhaul serve`.

    .venv/bin/python bench/push.py [--accounts 2000] [--drops 200] [--peer-accounts 50]
        [--security ssl|none] [--storm-rates 25 100] [--idle-seconds 120] [--quick]

One private Dovecot (tests/support/dovecot.py) with imap_hibernate, one user per account, and
one `serve` (SQLite, default settings, `[push]` defaults) watching every account's INBOX:

1. **storm**: `serve` starts with every account new; how long until `/metrics` counts every
   account watched at `push.connects_per_second` (5), with serve's and Dovecot's CPU.
2. **idle**: nothing arrives; serve's CPU (no HTTP request meanwhile) and RSS, Dovecot's
   processes and memory (hibernated sessions).
3. **drops**: one message at a time written into a random account's source Maildir (tmp/,
   then rename into new/: Dovecot notices it by inotify), the time taken just before it is
   written; delivered when a file appears in the account's destination Maildir `new/`
   (checked every 5 ms). Then a burst (`--burst` accounts at once) and repeats (a second
   drop into the same account soon after the first was delivered).
4. **storm rates**: serve restarted with `push.connects_per_second` raised (`--storm-rates`).
5. **peers** (`--peer-accounts`): fetchmail in `idle` mode, one process per account, against a
   `serve` with as many accounts: total RSS and latency, same drops.
6. optional: `--idle-variants` (idle CPU with `push.keepalive` 1740 s, 60 s, and push off)
   and `--race-offsets` (Dovecot alone: is new mail reported that lands t s after a
   client's IDLE resumed following a DONE?).

Dovecot needs fs.inotify.max_user_instances above the number of sessions (one instance
each, all as the mail user): the harness raises it for the run and puts it back.

Needs root (the test Dovecot). Work files in $MAILHAUL_BENCH_DIR (default /var/tmp). Prints
a Markdown report and writes it to bench/results/push.md.
"""

from __future__ import annotations

import argparse
import random
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import (
    NCPU,
    base_problems,
    busy_seconds,
    interrupt_on_signals,
    make_work_dir,
    remove_work_dir,
    say,
    session_seconds,
    start_dovecot,
    write_result,
)
from push_parts import (
    INOTIFY_INSTANCES,
    Pending,
    busiest_threads,
    count_new,
    drop_message,
    group_memory_mb,
    hibernate_config,
    latencies,
    race_probe,
    raise_fd_limit,
    raise_inotify_instances,
    restore_inotify_instances,
    session_processes,
    thread_seconds,
    wait_delivered,
)
from push_report import Drops, Report, Storm, histogram_text, render, summary
from push_serve import Serve, snapshot_src
from scale import (
    cpu_seconds,
    kill_children,
    memory_mb,
    pct,
)

from support.dovecot import MAIL_USER, DovecotServer

WATCHED = "mailhaul_push_watched_connections"


class PushBench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.report = Report(args)
        total = args.accounts + 2 * args.peer_accounts
        self.server = DovecotServer(work / "dovecot", extra_config=hibernate_config(total))
        self.sid: int | None = None
        self.rng = random.Random()
        self.src = work / "src"
        self.src_digest = snapshot_src(self.src)

    def start_dovecot(self) -> None:
        self.sid = start_dovecot(self.server, self.work)

    def users(self, prefix: str, n: int) -> list[tuple[str, str]]:
        return self.server.add_users(
            (f"{prefix}{i:05d}@push.test", secrets.token_urlsafe(12)) for i in range(n)
        )

    # 1. storm ---------------------------------------------------------------------------------
    def storm(self, serve: Serve, rate: float, rewrite: bool = True) -> Storm:
        """Start serve and wait until every account is watched."""
        n = len(serve.users)
        if rewrite:
            serve.write_toml(rate)
        dove0 = session_seconds(self.sid)
        t0 = serve.start()
        ready = time.monotonic() - t0
        limit = t0 + n / rate * 3 + 120
        marks: dict[int, float] = {}
        watched, seconds = 0, None
        m: dict[str, float] = {}
        while time.monotonic() < limit:
            m = serve.metrics()
            watched = int(m.get(WATCHED, 0))
            now = time.monotonic()
            for mark in (25, 50, 75, 100):
                if mark not in marks and watched * 100 >= mark * n:
                    marks[mark] = now - t0
            if watched >= n:
                seconds = now - t0
                break
            time.sleep(0.25)
        cpu = cpu_seconds(serve.pid)
        took = time.monotonic() - t0
        result = Storm(
            rate=rate,
            accounts=n,
            ready=ready,
            seconds=seconds,
            watched=watched,
            reconnects=m.get("mailhaul_push_reconnects_total", 0.0),
            serve_cpu=cpu / took,
            dovecot_cpu=(session_seconds(self.sid) - dove0) / took,
            marks=marks,
        )
        say(
            f"storm at {rate:g}/s: {watched}/{n} watched after {took:.0f} s, serve CPU "
            f"{pct(result.serve_cpu)}, reconnects {result.reconnects:.0f}"
        )
        return result

    def settle(self, serve: Serve, timeout: float = 600) -> None:
        """Until no poll runs and none is due (the first polls after adding the accounts)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline and quiet < 3:
            m = serve.metrics()
            lag = m.get("mailhaul_queue_lag_seconds", 0.0)
            quiet = quiet + 1 if m.get("mailhaul_running_polls", 0) == 0 and lag == 0 else 0
            time.sleep(1.0)

    # 2. idle ----------------------------------------------------------------------------------
    def idle(self, serve: Serve, label: str = "") -> float:
        """serve's CPU while nothing arrives (and its memory, Dovecot's); returns the CPU."""
        rep, secs = self.report, self.args.idle_seconds
        time.sleep(3)
        a = (time.monotonic(), cpu_seconds(serve.pid), session_seconds(self.sid), busy_seconds())
        threads_a = thread_seconds(serve.pid)
        time.sleep(secs)
        b = (time.monotonic(), cpu_seconds(serve.pid), session_seconds(self.sid), busy_seconds())
        threads = busiest_threads(threads_a, thread_seconds(serve.pid), b[0] - a[0])
        span = b[0] - a[0]
        serve_cpu, dove_cpu = (b[1] - a[1]) / span, (b[2] - a[2]) / span
        other = max(0.0, (b[3] - a[3]) - (b[1] - a[1]) - (b[2] - a[2])) / span
        rss, hwm = memory_mb(serve.pid)
        procs = session_processes(self.sid)
        dove_rss, dove_pss = group_memory_mb(p for pids in procs.values() for p in pids)
        counts = ", ".join(f"{k} {len(v)}" for k, v in sorted(procs.items()))
        m = serve.metrics()
        if label:
            rep.variants.append(
                f"| {label} | {m.get(WATCHED, 0):.0f} | {pct(serve_cpu)} | {threads} | "
                f"{rss:.0f} MB | {pct(dove_cpu)} | {pct(other)} |"
            )
            say(f"idle ({label}): serve CPU {pct(serve_cpu)} ({threads})")
            return serve_cpu
        rep.idle.update(
            {
                "watched connections": f"{m.get(WATCHED, 0):.0f}",
                "serve CPU, nothing arriving": f"{pct(serve_cpu)} of one core over {span:.0f} s "
                "(no HTTP request meanwhile)",
                "serve threads": threads,
                "serve RSS": f"{rss:.0f} MB (peak VmHWM {hwm:.0f} MB)",
                "Dovecot CPU meanwhile": f"{pct(dove_cpu)} of one core",
                "Dovecot processes": counts,
                "Dovecot memory": f"RSS summed {dove_rss:.0f} MB, PSS {dove_pss:.0f} MB",
                "other processes' CPU": f"{pct(other)} of one core",
            }
        )
        say(f"idle: serve CPU {pct(serve_cpu)} ({threads}), RSS {rss:.0f} MB; Dovecot {counts}")
        return serve_cpu

    # 3. drops ---------------------------------------------------------------------------------
    def drop(self, user: str, dest: Path, k: int) -> Pending:
        p = Pending(dest=dest, before=count_new(dest), arrived=time.time())
        self.server.deliver(user, drop_message(user, k))
        return p

    def drops(self, serve: Serve, what: str, count: int) -> Drops:
        """`count` drops one at a time into random accounts, each awaited (30 s at most)."""
        before = serve.metrics()
        done: list[Pending] = []
        for k in range(count):
            i = self.rng.randrange(len(serve.users))
            p = self.drop(serve.users[i][0], serve.dests[i], k)
            wait_delivered([p], 30.0)
            done.append(p)
            time.sleep(self.rng.uniform(0.1, 0.4))
        result = Drops(what, count, latencies(done), histogram_text(before, serve.metrics()))
        say(f"drops ({what}): {len(result.lat)}/{count} delivered, {summary(result.lat)}")
        return result

    def burst(self, serve: Serve, count: int) -> Drops:
        """`count` drops into distinct accounts at once."""
        before = serve.metrics()
        chosen = self.rng.sample(range(len(serve.users)), min(count, len(serve.users)))
        pending = [self.drop(serve.users[i][0], serve.dests[i], 10_000 + i) for i in chosen]
        wait_delivered(pending, 60.0)
        what = f"burst of {len(chosen)} at once"
        result = Drops(
            what, len(chosen), latencies(pending), histogram_text(before, serve.metrics())
        )
        say(f"burst: {len(result.lat)}/{len(chosen)} delivered, {summary(result.lat)}")
        return result

    def repeat(self, serve: Serve, count: int) -> Drops:
        """A second drop into the same account soon after the first was delivered (0 to
        0.4 s later, while or just after its poll ends): is the second one delivered?"""
        before = serve.metrics()
        done: list[Pending] = []
        for k in range(count):
            i = self.rng.randrange(len(serve.users))
            first = self.drop(serve.users[i][0], serve.dests[i], 20_000 + k)
            wait_delivered([first], 30.0)
            gap = (k % 5) * 0.1
            time.sleep(gap)
            second = self.drop(serve.users[i][0], serve.dests[i], 30_000 + k)
            second.before = max(second.before, first.before + 1)
            wait_delivered([second], 20.0)
            done.append(second)
            if second.delivered is None:
                self.report.notes.append(
                    f"repeat drop {k}: account {i}, second drop {gap:.1f} s after the first was "
                    f"delivered (first took {(first.delivered or 0) - first.arrived:.2f} s): "
                    "not delivered within 20 s"
                )
            time.sleep(0.3)
        what = "same account again, 0–0.4 s after delivery"
        result = Drops(what, count, latencies(done), histogram_text(before, serve.metrics()))
        say(f"repeat: {len(result.lat)}/{count} delivered, {summary(result.lat)}")
        return result

    def idle_variants(self, serve: Serve) -> None:
        """Where the idle CPU goes: serve again with `push.keepalive` at its longest (no
        keepalive in the window), at 60 s (a keepalive per account in the window), and with
        push off (the scheduler alone), each measured as the idle phase is."""
        for label, extra in (
            ("push on, keepalive 1740 s (none in the window)", "keepalive = 1740\n"),
            ("push on, keepalive 60 s", "keepalive = 60\n"),
            ("push off (`push.enabled = false`, accounts' `push` unset)", None),
        ):
            serve.stop()
            if extra is None:  # the accounts say push on: make them follow the setting
                conn = sqlite3.connect(serve.home / "mailhaul.db", timeout=60)
                with conn:
                    conn.execute("UPDATE accounts SET push = NULL")
                conn.close()
                serve.write_toml(self.args.rate, "", enabled=False)
                serve.start()
                time.sleep(10)
            else:
                serve.write_toml(self.args.rate, extra)
                self.storm(serve, self.args.rate, rewrite=False)
            self.settle(serve)
            time.sleep(6)  # hibernated
            self.idle(serve, label)

    def race(self) -> None:
        """Dovecot alone: new mail t seconds after a client's IDLE that follows a DONE (a
        keepalive) on a hibernated session; is it reported (`push_parts.race_probe`)?"""
        for k, at in enumerate(self.args.race_offsets):
            login = self.users(f"r{k}-", 1)[0]
            user = login[0]

            def drop(user: str = user, k: int = k) -> None:
                self.server.deliver(user, drop_message(user, 40_000 + k))

            got, at_keepalive = race_probe(self.server.ports.imap, login, drop, at)
            seen = "no EXISTS within 20 s" if got is None else f"EXISTS after {got:.3f} s"
            if got is None:
                seen += "; the next DONE brings it" if at_keepalive else "; nor at the next DONE"
            self.report.race.append(f"| {at:g} s | {seen} |")
            say(f"race: drop {at:g} s after IDLE: {seen}")

    # 5. fetchmail ------------------------------------------------------------------------------
    def peers(self) -> None:
        import os

        from peers import build_mda, versions
        from procs import user_ids
        from push_parts import IdlePeer, end_all, fetchmail_argv, fetchmail_idle_rc, start_as

        n, rep = self.args.peer_accounts, self.report
        uid, gid = user_ids(MAIL_USER)
        base = self.work / "fetchmail"
        base.mkdir(mode=0o711)
        os.chown(base, uid, gid)
        mda, mda_kind = build_mda(self.work)
        users = self.users("f", n)
        procs: list[subprocess.Popen[bytes]] = []
        dests: list[Path] = []
        try:
            for i, (user, password) in enumerate(users):
                home = base / f"f{i:03d}"
                home.mkdir(mode=0o700)
                maildir = home / "Maildir"
                for sub in ("", "tmp", "new", "cur"):
                    (maildir / sub).mkdir(mode=0o700, exist_ok=True)
                for path in (home, maildir, maildir / "tmp", maildir / "new", maildir / "cur"):
                    os.chown(path, uid, gid)
                tls = self.args.security == "ssl"
                peer = IdlePeer(
                    home=home,
                    port=self.server.ports.imaps if tls else self.server.ports.imap,
                    user=user,
                    password=password,
                    maildir=maildir,
                    mda=mda,
                    mail_user=MAIL_USER,
                    ca=self.server.ca_path if tls else None,
                )
                rc = fetchmail_idle_rc(peer)
                os.chown(rc, uid, gid)
                procs.append(start_as(fetchmail_argv(home, rc), home, uid, gid, home / "log"))
                dests.append(maildir)
            time.sleep(10)  # every process logged in and in IDLE (Dovecot hibernates it)
            rss, pss = group_memory_mb(p.pid for p in procs)
            alive = sum(1 for p in procs if p.poll() is None)
            done: list[Pending] = []
            for k in range(self.args.peer_drops):
                i = self.rng.randrange(n)
                p = Pending(dest=dests[i], before=count_new(dests[i]), arrived=time.time())
                self.server.deliver(users[i][0], drop_message(users[i][0], k))
                wait_delivered([p], 30.0)
                done.append(p)
                time.sleep(self.rng.uniform(0.1, 0.4))
            lat = latencies(done)
            rep.drops.append(Drops(f"fetchmail idle, {n} processes", len(done), lat))
            rep.peers.update(
                {
                    "fetchmail": f"{versions().get('fetchmail', '?')}, MDA {mda_kind}",
                    "fetchmail processes alive": f"{alive} of {n}",
                    "fetchmail RSS, all processes": f"{rss:.0f} MB summed VmRSS "
                    f"({rss / max(1, alive):.1f} MB each), PSS {pss:.0f} MB",
                }
            )
            say(f"fetchmail: {alive}/{n} alive, RSS {rss:.0f} MB, {summary(lat)}")
        finally:
            end_all(procs)

    def mailhaul_peer(self) -> None:
        """A serve with as many accounts as the fetchmail side, the same drops."""
        n, rep = self.args.peer_accounts, self.report
        serve = Serve(self.work, "m", self.users("m", n), self)
        try:
            self.storm(serve, self.args.rate)
            self.settle(serve)
            time.sleep(6)  # hibernated
            rss, hwm = memory_mb(serve.pid)
            pss = group_memory_mb([serve.pid])[1]
            rep.drops.append(self.drops(serve, f"mailhaul, {n} accounts", self.args.peer_drops))
            rep.peers["mailhaul RSS"] = (
                f"{rss:.0f} MB VmRSS (PSS {pss:.0f} MB, peak {hwm:.0f} MB), one process"
            )
        finally:
            serve.stop()

    # the run -----------------------------------------------------------------------------------
    def run(self) -> None:
        args, rep = self.args, self.report
        t0 = time.perf_counter()
        users = self.users("s", args.accounts)
        say(f"dovecot: {args.accounts} users in {time.perf_counter() - t0:.1f} s")
        serve = Serve(self.work, "u", users, self)
        rep.facts.append(f"{args.accounts:,} accounts added in {serve.added:.1f} s")
        try:
            rep.storms.append(self.storm(serve, args.rate))
            self.settle(serve)
            self.idle(serve)
            rep.drops.append(self.drops(serve, f"one at a time, {args.accounts:,}", args.drops))
            if args.burst:
                time.sleep(6)
                rep.drops.append(self.burst(serve, args.burst))
            if args.repeats:
                time.sleep(6)
                rep.drops.append(self.repeat(serve, args.repeats))
            for rate in args.storm_rates:
                serve.stop()
                rep.storms.append(self.storm(serve, rate))
            if args.idle_variants:
                self.idle_variants(serve)
        finally:
            serve.stop()
        if args.peer_accounts:
            self.mailhaul_peer()
            self.peers()
        if args.race_offsets:
            self.race()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--drops", type=int, default=200, help="drops one at a time")
    ap.add_argument("--burst", type=int, default=20, help="drops at once (0: none)")
    ap.add_argument("--repeats", type=int, default=20, help="second drops, same account")
    ap.add_argument("--peer-accounts", type=int, default=50, help="fetchmail side (0: none)")
    ap.add_argument("--peer-drops", type=int, default=50)
    ap.add_argument("--rate", type=float, default=5.0, help="push.connects_per_second")
    ap.add_argument("--storm-rates", type=float, nargs="*", default=[25.0, 100.0])
    ap.add_argument("--idle-seconds", type=float, default=120.0)
    ap.add_argument(
        "--idle-variants", action="store_true", help="idle CPU: keepalive 1740, 60 s; push off"
    )
    ap.add_argument(
        "--race-offsets",
        type=float,
        nargs="*",
        default=[],
        help="Dovecot's hibernation race: drops t s after IDLE resumed (e.g. 3 4.8 5.2)",
    )
    ap.add_argument("--security", choices=("ssl", "none"), default="ssl")
    ap.add_argument("--quick", action="store_true", help="200 accounts, fewer drops")
    ap.add_argument("--keep-work", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.accounts, args.drops, args.peer_accounts = 200, 40, 10
        args.peer_drops, args.idle_seconds, args.storm_rates = 20, 30.0, [50.0]
        args.rate = max(args.rate, 20.0)
    problems = base_problems("the test Dovecot runs mail processes as another user", MAIL_USER)
    if problems:
        raise SystemExit("bench: " + "; ".join(problems))
    fds = raise_fd_limit()
    old_inotify = raise_inotify_instances(args.accounts + 3 * args.peer_accounts + 256)
    interrupt_on_signals()
    work = make_work_dir("mailhaul-push-")
    bench = PushBench(work, args)
    bench.report.src_digest = bench.src_digest
    bench.report.facts.append(
        f"open-file limit of the harness, serve and Dovecot: {fds}; fs.inotify."
        f"max_user_instances {INOTIFY_INSTANCES.read_text().strip()} during the run"
        + (f" (restored to {old_inotify} after)" if old_inotify is not None else "")
    )
    code = 0
    try:
        say(f"bench: work dir {work}; {NCPU} cores")
        bench.start_dovecot()
        bench.run()
        write_result("push.md", render(bench.report))
    except KeyboardInterrupt:
        say("bench: interrupted, cleaning up")
        code = 130
    finally:
        kill_children()
        bench.server.close()
        restore_inotify_instances(old_inotify)
        remove_work_dir(work, args.keep_work)
    return code


if __name__ == "__main__":
    sys.exit(main())
