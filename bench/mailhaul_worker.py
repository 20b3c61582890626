"""Poll one mailhaul account in this (fresh) process, as `mailhaul serve` would, and time it.

    mailhaul_worker.py HOME ACCOUNT_ID [--polls N] [--profile OUT] [--list-in-full]

The App is built and the source adapters imported before the clock starts, so each time is
`Poller.poll()` alone. Prints one JSON line: {"polls": [{"seconds", "fetched", "bytes",
"result", "error"}, ...]}. With --profile, the polls run under cProfile and the statistics
(sorted by cumulative and by own time) are written to OUT. With --list-in-full, the
account's folders are made to look changed before each poll (their recorded STATUS is
forgotten, outside the timed part), so each poll lists the folder instead of ending after
one STATUS: the cost of a "nothing new" poll when the check cannot be used.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

import mailhaul.adapters.sources.imap.source
import mailhaul.adapters.sources.pop3.source  # noqa: F401  (imported before timing)
from mailhaul.bootstrap import App
from mailhaul.settings import load_settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("home", type=Path)
    ap.add_argument("account", type=int)
    ap.add_argument("--polls", type=int, default=1)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--list-in-full", action="store_true")
    args = ap.parse_args()
    app = App(load_settings(args.home, environ={}))
    poller = app.poller
    profiler = cProfile.Profile() if args.profile else None
    polls = []
    account = app.accounts.get(args.account)
    for _ in range(args.polls):
        if args.list_in_full:
            with app.db.begin() as conn:
                for folder in account.spec.options.folders:
                    app.poller.deps.folders.set_quiet(conn, args.account, folder, None)
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        summary = poller.poll(args.account, trigger="bench")
        seconds = time.perf_counter() - started
        if profiler:
            profiler.disable()
        polls.append(
            {
                "seconds": seconds,
                "fetched": summary.fetched,
                "bytes": summary.bytes,
                "result": summary.result,
                "error": summary.error,
            }
        )
    if profiler and args.profile:
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(35)
        args.profile.write_text(buf.getvalue())
    print(json.dumps({"polls": polls}))


if __name__ == "__main__":
    main()
