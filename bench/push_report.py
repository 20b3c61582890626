"""The push benchmark's findings and its Markdown report (bench/push.py runs it)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from scale import git_commit, machine, pct, quantile


@dataclass
class Storm:
    """A start-up: every account watched after `seconds` (None: not within the limit)."""

    rate: float
    accounts: int
    ready: float  # seconds from the spawn until serve answered HTTP
    seconds: float | None
    watched: int
    reconnects: float
    serve_cpu: float  # share of one core over the storm
    dovecot_cpu: float
    marks: dict[int, float] = field(default_factory=dict)  # percent watched -> seconds


@dataclass
class Drops:
    what: str
    sent: int
    lat: list[float]
    histogram: str = ""

    def line(self) -> str:
        if not self.lat:
            return f"| {self.what} | {self.sent} | 0 | – | – | – |"
        return (
            f"| {self.what} | {self.sent} | {len(self.lat)} | {quantile(self.lat, 0.5):.2f} s | "
            f"{quantile(self.lat, 0.95):.2f} s | {max(self.lat):.2f} s |"
        )


@dataclass
class Report:
    args: argparse.Namespace
    started: float = field(default_factory=time.monotonic)
    facts: list[str] = field(default_factory=list)
    storms: list[Storm] = field(default_factory=list)
    idle: dict[str, str] = field(default_factory=dict)
    drops: list[Drops] = field(default_factory=list)
    peers: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    src_digest: str = ""
    variants: list[str] = field(default_factory=list)
    race: list[str] = field(default_factory=list)


def histogram_text(a: dict[str, float], b: dict[str, float]) -> str:
    """The serve's own latency histogram over the drops (from the change IDLE reported to
    the end of the poll): count, mean and the bucket share at or under 1 and 2 s."""
    key = "mailhaul_push_latency_seconds"
    count = b.get(f"{key}_count", 0.0) - a.get(f"{key}_count", 0.0)
    if count <= 0:
        return "no observation"
    total = b.get(f"{key}_sum", 0.0) - a.get(f"{key}_sum", 0.0)
    parts = [f"{count:.0f} polls, mean {total / count:.2f} s"]
    for le in ("0.5", "1.0", "2.0"):
        name = f'{key}_bucket{{le="{le}"}}'
        within = b.get(name, 0.0) - a.get(name, 0.0)
        parts.append(f"≤ {le} s: {100 * within / count:.0f}%")
    return ", ".join(parts)


def summary(lat: list[float]) -> str:
    if not lat:
        return "none delivered"
    return f"p50 {quantile(lat, 0.5):.2f} s, p95 {quantile(lat, 0.95):.2f} s, max {max(lat):.2f} s"


def render(rep: Report) -> str:
    args = rep.args
    out: list[str] = []
    w = out.append
    w(f"# mailhaul push benchmark — {time.strftime('%Y-%m-%d %H:%M')}\n")
    w(f"- machine: {machine()}")
    w(
        f"- mailhaul at {git_commit()} (copy of src/ with sha256 {rep.src_digest} of its .py "
        f"files, through PYTHONPATH); security `{args.security}`, IMAP, interval 3600 s"
    )
    w(
        "- Dovecot: imap_hibernate_timeout 5 s, high-performance login "
        "(service_count 0), limits for the accounts (bench/push_parts.py)"
    )
    for fact in rep.facts:
        w(f"- {fact}")
    w(f"- wall time of the bench: {(time.monotonic() - rep.started) / 60:.1f} min\n")
    w("## Start-up: connection storm\n")
    w(
        "| connects/s | accounts | serve up | all watched | 25% / 50% / 75% | effective "
        "connects/s | reconnects | serve CPU | Dovecot CPU |"
    )
    w("|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for s in rep.storms:
        done = f"{s.seconds:.0f} s" if s.seconds is not None else f"no ({s.watched} watched)"
        marks = " / ".join(f"{s.marks[m]:.0f} s" if m in s.marks else "–" for m in (25, 50, 75))
        eff = (
            f"{s.accounts / (s.seconds - s.ready):.1f}"
            if s.seconds is not None and s.seconds > s.ready
            else "–"
        )
        w(
            f"| {s.rate:g} | {s.accounts:,} | {s.ready:.1f} s | {done} | {marks} | {eff} | "
            f"{s.reconnects:.0f} | {pct(s.serve_cpu)} | {pct(s.dovecot_cpu)} |"
        )
    w(
        '\nTimes from the spawn of `serve`; "effective" counts from when it answered HTTP. '
        "CPU as a share of one core over the same time.\n"
    )
    if rep.idle:
        w(f"## Nothing arriving, {args.accounts:,} accounts watched\n")
        w("| measure | value |")
        w("|---|---|")
        for key, value in rep.idle.items():
            w(f"| {key} | {value} |")
        w("")
    w("## Arrival to delivery\n")
    w("| drops | sent | delivered | p50 | p95 | max |")
    w("|---|---:|---:|---:|---:|---:|")
    for d in rep.drops:
        w(d.line())
    for d in rep.drops:
        if d.histogram:
            w(f'\n`mailhaul_push_latency_seconds` during "{d.what}": {d.histogram}.')
    w(
        "\nArrival: just before the harness wrote the source Maildir's file (tmp/, then new/); "
        "delivery: when it saw the file in the destination's new/ (checked every 5 ms).\n"
    )
    if rep.variants:
        w("## Idle CPU: where it goes\n")
        w("| serve | watched | serve CPU | threads | RSS | Dovecot CPU | other CPU |")
        w("|---|---:|---:|---|---:|---:|---:|")
        out.extend(rep.variants)
        w("")
    if rep.peers:
        w(f"## Side by side, {args.peer_accounts} accounts\n")
        w("| measure | value |")
        w("|---|---|")
        for key, value in rep.peers.items():
            w(f"| {key} | {value} |")
        w("")
    if rep.race:
        w("## Dovecot alone: new mail t s after IDLE resumed following a DONE (plain IMAP)\n")
        w("| t | the client saw |")
        w("|---:|---|")
        out.extend(rep.race)
        w("")
    if rep.notes:
        w("## Notes\n")
        for note in rep.notes:
            w(f"- {note}")
    return "\n".join(out) + "\n"
