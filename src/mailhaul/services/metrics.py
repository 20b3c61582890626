"""Prometheus metrics of `mailhaul serve`, on a registry of their own.

Counters and the duration histogram are fed by `Metrics.observe` after each poll; the
gauges (queue lag, accounts by state, running polls) are read from the database when
`/metrics` is scraped, so they are right whichever process did the polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mailhaul.domain.errors import ErrorKind
from mailhaul.domain.scheduling import PollResult
from mailhaul.services.status import LiveGauges

logger = logging.getLogger(__name__)

ERROR_KINDS = tuple(ErrorKind)
POLL_RESULTS = (PollResult.OK, PollResult.ERROR)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
SCAN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PUSH_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# A scrape reuses live values read less than this many seconds ago (see `refresh`).
LIVE_MAX_AGE = 2.0


class PollOutcome(Protocol):
    """What `observe` reads from a poll's summary (`polling.RunSummary` fits)."""

    @property
    def result(self) -> PollResult: ...
    @property
    def fetched(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def duration(self) -> float: ...


LiveSource = Callable[[], LiveGauges]


class PushFigures(Protocol):
    """What the push watcher counted (`push.PushCounters` fits)."""

    @property
    def watched(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def requests(self) -> int: ...


class _PushCollector:
    """This process's push watcher, read at scrape time."""

    def __init__(self, figures: PushFigures) -> None:
        self.figures = figures

    def describe(self) -> Iterable[Metric]:
        """The metric names."""
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        """The watcher's figures now."""
        f = self.figures
        watched = GaugeMetricFamily(
            "mailhaul_push_watched_connections", "IDLE connections watching now (this process)"
        )
        watched.add_metric([], float(f.watched))
        return [
            watched,
            CounterMetricFamily(
                "mailhaul_push_events", "Changes IDLE reported (EXISTS, RECENT, …)", f.events
            ),
            CounterMetricFamily(
                "mailhaul_push_reconnects",
                "Watcher connections lost and opened again",
                f.reconnects,
            ),
            CounterMetricFamily(
                "mailhaul_push_requests", "Polls asked for by the watcher", f.requests
            ),
        ]


class _LiveCollector:
    """Yields the database-backed gauges at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "mailhaul_database_up", "1 if the database answered the last scrape, else 0"
            ),
            GaugeMetricFamily(
                "mailhaul_queue_lag_seconds",
                "Now minus the oldest due next-run among active, unpaused, idle accounts",
            ),
            GaugeMetricFamily("mailhaul_accounts", "Accounts by state", labels=["state"]),
            GaugeMetricFamily("mailhaul_running_polls", "Polls running now (leases held)"),
            GaugeMetricFamily("mailhaul_open_incidents", "Accounts failing now (an incident open)"),
        )

    def describe(self) -> Iterable[Metric]:
        """The metric names, without reading the database."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        """The gauges, read from the database (or only database_up 0 when it is down)."""
        live = self.metrics.current_live()
        up, lag, states, running, incidents = self._families()
        up.add_metric([], 0.0 if live is None else 1.0)
        if live is None:
            return [up]
        lag.add_metric([], live.queue_lag_seconds)
        for state, count in sorted(live.accounts_by_state.items()):
            states.add_metric([state], float(count))
        running.add_metric([], float(live.running_polls))
        incidents.add_metric([], float(live.open_incidents))
        return [up, lag, states, running, incidents]


class Metrics:
    """The metrics of one process; ``live`` reads the scrape-time gauges (None: left out)."""

    def __init__(self, live: LiveSource | None = None) -> None:
        self.registry = CollectorRegistry()
        self._live = live
        self._lock = threading.Lock()
        self._cached: tuple[float, LiveGauges | None] | None = None
        self.polls = Counter(
            "mailhaul_polls", "Polls finished, by result", ["result"], registry=self.registry
        )
        self.messages = Counter("mailhaul_messages", "Messages delivered", registry=self.registry)
        self.bytes = Counter("mailhaul_bytes", "Bytes delivered", registry=self.registry)
        self.errors = Counter(
            "mailhaul_errors", "Failed polls, by kind of error", ["kind"], registry=self.registry
        )
        self.duration = Histogram(
            "mailhaul_poll_duration_seconds",
            "How long a poll took",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.scans = Counter(
            "mailhaul_scanner_checks",
            "Messages a scanner was asked about, by scanner and result "
            "(clean, spam, infected, error)",
            ["scanner", "result"],
            registry=self.registry,
        )
        self.scan_duration = Histogram(
            "mailhaul_scanner_duration_seconds",
            "How long a scanner took to answer (or to fail)",
            ["scanner"],
            buckets=SCAN_BUCKETS,
            registry=self.registry,
        )
        self.push_latency = Histogram(
            "mailhaul_push_latency_seconds",
            "From the change IDLE reported to the end of the poll that delivered it",
            buckets=PUSH_BUCKETS,
            registry=self.registry,
        )
        for result in POLL_RESULTS:
            self.polls.labels(result=result)
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)
        if live is not None:
            self.registry.register(_LiveCollector(self))

    def observe(self, summary: PollOutcome, error_kind: str | None = None) -> None:
        """Count one finished poll; ``error_kind`` (one of ERROR_KINDS) for a failed one.

        A poll that ended ``busy`` (another process held the account) is not counted.
        """
        if summary.result not in POLL_RESULTS:
            return
        if error_kind is not None and error_kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {error_kind!r}")
        self.polls.labels(result=summary.result).inc()
        if summary.fetched > 0:
            self.messages.inc(summary.fetched)
        if summary.bytes > 0:
            self.bytes.inc(summary.bytes)
        self.duration.observe(max(0.0, summary.duration))
        if summary.result == PollResult.ERROR and error_kind is not None:
            self.errors.labels(kind=error_kind).inc()

    def watch_push(self, figures: PushFigures) -> None:
        """Expose the push watcher's figures (`serve` has one)."""
        self.registry.register(_PushCollector(figures))

    def observe_scan(self, scanner: str, result: str, seconds: float) -> None:
        """Count one scanner call (the filter stage's observer)."""
        self.scans.labels(scanner=scanner, result=result).inc()
        self.scan_duration.labels(scanner=scanner).observe(max(0.0, seconds))

    def count_error(self, kind: str) -> None:
        """Count an error outside a poll's summary (e.g. the due-accounts query failed)."""
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        self.errors.labels(kind=kind).inc()

    def refresh(self) -> None:
        """Read the live gauges now (the web app calls this off the event loop)."""
        if self._live is None:
            return
        try:
            live: LiveGauges | None = self._live()
        except Exception as exc:  # a scrape must answer even when the database does not
            logger.warning("metrics: cannot read the database: %s", exc)
            live = None
        with self._lock:
            self._cached = (time.monotonic(), live)

    def current_live(self) -> LiveGauges | None:
        """The live gauges, read again unless a refresh just happened (None: DB down)."""
        with self._lock:
            cached = self._cached
        if cached is None or time.monotonic() - cached[0] > LIVE_MAX_AGE:
            self.refresh()
            with self._lock:
                cached = self._cached
        return None if cached is None else cached[1]

    def exposition(self) -> bytes:
        """The text exposition format of every metric (what `/metrics` answers)."""
        return generate_latest(self.registry)
