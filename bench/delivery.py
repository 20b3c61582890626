"""mailhaul's delivery methods side by side: messages/s into Maildir, LMTP, SMTP and an MDA.

    .venv/bin/python bench/delivery.py [--count 2000] [--repeats 3]

One private Dovecot (tests/support/dovecot.py) serves the same corpus over IMAP each run;
`python -m mailhaul fetch ID --json --here` delivers it with each `delivery.method`:
maildir (mailhaul's own, fsync'd), lmtp (into Dovecot's LMTP, `mail_fsync = optimized`),
smtp (into an aiosmtpd server in this process that keeps the messages in memory) and mda
(bench/mda.c: open tmp/, write, fsync, rename into new/ — one fork per message). The table
gives the in-service rate (the run's own duration, what `mailhaul serve` pays) and the
process rate (wall time including start-up). Not part of the tests; run as root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT / "tests"), str(BENCH)]

from corpus import make_corpus  # noqa: E402
from peers import build_mda  # noqa: E402

from support.dovecot import DovecotServer, Mailbox  # noqa: E402
from support.smtp_server import Handler, SmtpTestServer  # noqa: E402

METHODS = ("maildir", "lmtp", "smtp", "mda")


def mailhaul(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILHAUL_HOME": str(home), "MAILHAUL_WEB_LISTEN": ""}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode, not a compile per run
    return subprocess.run(
        [sys.executable, "-m", "mailhaul", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )


def one_run(
    method: str, work: Path, dovecot: DovecotServer, corpus: list[bytes], extra: dict[str, str]
) -> tuple[float, float, int]:
    """(in-service seconds, wall seconds, messages) for one delivery of the corpus."""
    source = dovecot.new_mailbox()
    for raw in corpus:
        source.deliver(raw)
    home = Path(tempfile.mkdtemp(prefix=f"home-{method}-", dir=work))
    toml = f'[delivery]\nmethod = "{method}"\n'
    deliver_to = "owner@bench.test"
    if method == "lmtp":
        local: Mailbox = dovecot.new_mailbox()
        deliver_to = local.user
        toml += f'lmtp = "127.0.0.1:{dovecot.ports.lmtp}"\n'
    elif method == "smtp":
        toml += f'smtp = "{extra["smtp"]}"\n'
    elif method == "mda":
        target = Path(tempfile.mkdtemp(prefix="mda-", dir=work))
        for sub in ("tmp", "new", "cur"):
            (target / sub).mkdir()
        toml += f'mda = "{extra["mda"]} {target}"\n'
    home.mkdir(exist_ok=True)
    (home / "mailhaul.toml").write_text(toml)
    mailhaul(home, "init")
    added = mailhaul(
        home,
        "account", "add", "--owner", "owner@bench.test", "--protocol", "imap",
        "--host", "localhost", "--port", str(dovecot.ports.imap), "--security", "none",
        "--username", source.user, "--deliver-to", deliver_to, "--password-stdin",
        stdin=source.password + "\n",
    )  # fmt: skip
    started = time.perf_counter()
    fetched = mailhaul(home, "fetch", added.stdout.strip(), "--json", "--here")
    wall = time.perf_counter() - started
    [result] = json.loads(fetched.stdout)
    if result["result"] != "ok" or result["fetched"] != len(corpus):
        raise SystemExit(f"{method}: {result}")
    return float(result["duration"]), wall, int(result["fetched"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = os.environ.get("MAILHAUL_BENCH_DIR", "/var/tmp")  # /tmp is slow here (run.py)
    os.environ["TMPDIR"] = base
    tempfile.tempdir = base
    work = Path(tempfile.mkdtemp(prefix="mailhaul-delivery-", dir=base))
    os.chmod(work, 0o711)  # noqa: S103 - the mail user must reach its Maildirs in here
    corpus = make_corpus("small", args.count, 20_000).messages
    rows: list[str] = []
    try:
        mda, _ = build_mda(work)
        with (
            DovecotServer(work / "dovecot", extra_config="mail_fsync = optimized\n") as dovecot,
            SmtpTestServer(Handler()) as smtp,
        ):
            extra = {"smtp": smtp.address, "mda": str(mda)}
            for method in METHODS:
                service, wall = [], []
                for _ in range(args.repeats):
                    seconds, total, count = one_run(method, work, dovecot, corpus, extra)
                    service.append(count / seconds)
                    wall.append(count / total)
                    smtp.handler.messages.clear()
                row = (
                    f"| {method} | {statistics.median(service):,.0f} "
                    f"| {statistics.median(wall):,.0f} |"
                )
                print(row, flush=True)
                rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = (
        f"{args.count} × ~20 KB over IMAP (plain, loopback), medians of {args.repeats}\n\n"
        "| method | msgs/s in service | msgs/s as a process |\n|---|---:|---:|\n"
        + "\n".join(rows)
        + "\n"
    )
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    (results / "delivery.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
