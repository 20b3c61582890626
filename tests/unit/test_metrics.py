"""Prometheus metrics: what a poll adds, what a scrape reads from the database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update

from mailhaul.adapters.db.tables import accounts
from mailhaul.domain import errors
from mailhaul.domain.errors import error_kind
from mailhaul.domain.scheduling import PollResult
from mailhaul.services.metrics import ERROR_KINDS, Metrics
from mailhaul.services.polling import RunSummary
from mailhaul.services.status import LiveGauges, StatusService
from support.harness import Harness


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_observe_counts_a_successful_poll():
    metrics = Metrics()
    summary = RunSummary(
        account_id=1, run_id=7, result=PollResult.OK, fetched=3, bytes=4096, duration=2.0
    )
    metrics.observe(summary)
    assert sample(metrics, "mailhaul_polls_total", result="ok") == 1
    assert sample(metrics, "mailhaul_polls_total", result="error") == 0
    assert sample(metrics, "mailhaul_messages_total") == 3
    assert sample(metrics, "mailhaul_bytes_total") == 4096
    assert sample(metrics, "mailhaul_poll_duration_seconds_count") == 1
    assert sample(metrics, "mailhaul_poll_duration_seconds_sum") == 2.0
    assert sample(metrics, "mailhaul_poll_duration_seconds_bucket", le="2.5") == 1
    assert sample(metrics, "mailhaul_poll_duration_seconds_bucket", le="1.0") == 0


def test_observe_counts_a_failed_poll_by_kind():
    metrics = Metrics()
    failed = RunSummary(
        account_id=1, run_id=8, result=PollResult.ERROR, error="login", duration=0.3
    )
    metrics.observe(failed, "auth")
    metrics.observe(failed, "auth")
    metrics.observe(failed, "tls")
    assert sample(metrics, "mailhaul_polls_total", result="error") == 3
    assert sample(metrics, "mailhaul_errors_total", kind="auth") == 2
    assert sample(metrics, "mailhaul_errors_total", kind="tls") == 1
    assert sample(metrics, "mailhaul_errors_total", kind="network") == 0


def test_every_error_kind_is_exported_from_the_start():
    text = Metrics().exposition().decode()
    for kind in ERROR_KINDS:
        assert f'mailhaul_errors_total{{kind="{kind}"}} 0.0' in text
    for name in ("mailhaul_polls_total", "mailhaul_messages_total", "mailhaul_bytes_total"):
        assert f"# TYPE {name} counter" in text
    assert "# TYPE mailhaul_poll_duration_seconds histogram" in text


def test_busy_polls_are_not_counted_and_unknown_kinds_are_refused():
    metrics = Metrics()
    metrics.observe(RunSummary(account_id=1, run_id=None, result=PollResult.BUSY))
    assert sample(metrics, "mailhaul_polls_total", result="ok") == 0
    assert sample(metrics, "mailhaul_poll_duration_seconds_count") == 0
    with pytest.raises(ValueError, match="unknown error kind"):
        metrics.observe(RunSummary(account_id=1, run_id=2, result=PollResult.ERROR), "gremlins")


def test_errors_outside_a_poll_are_counted_too():
    metrics = Metrics()
    metrics.count_error("storage")
    assert sample(metrics, "mailhaul_errors_total", kind="storage") == 1
    assert sample(metrics, "mailhaul_polls_total", result="error") == 0
    with pytest.raises(ValueError, match="unknown error kind"):
        metrics.count_error("cosmic rays")


def test_two_metrics_objects_do_not_share_a_registry():
    first, second = Metrics(), Metrics()
    first.observe(RunSummary(account_id=1, run_id=1, result=PollResult.OK))
    assert sample(first, "mailhaul_polls_total", result="ok") == 1
    assert sample(second, "mailhaul_polls_total", result="ok") == 0


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (errors.AuthenticationFailed("no"), "auth"),
        (errors.TlsFailure("bad cert"), "tls"),
        (errors.TransientSourceError("timeout"), "network"),
        (errors.ProtocolViolation("garbage"), "protocol"),
        (errors.UnsupportedByServer("no UIDL"), "protocol"),
        (errors.SourceError("other"), "protocol"),
        (errors.DestinationMissing("no mailbox"), "destination_missing"),
        (errors.TemporaryDeliveryError("disk full"), "delivery"),
        (errors.PermanentDeliveryError("refused"), "delivery"),
        (errors.ConfigError("bad"), "config"),
        (errors.StorageError("locked"), "storage"),
        (ConnectionResetError(), "network"),
        (KeyError("bug"), "internal"),
    ],
)
def test_error_kind_maps_the_domain_errors(exc: BaseException, kind: str):
    assert error_kind(exc) == kind
    assert kind in ERROR_KINDS


def test_scrape_reads_live_gauges():
    live = LiveGauges(
        queue_lag_seconds=12.5, accounts_by_state={"ok": 2, "paused": 1}, running_polls=1
    )
    metrics = Metrics(live=lambda: live)
    text = metrics.exposition().decode()
    assert "mailhaul_database_up 1.0" in text
    assert "mailhaul_queue_lag_seconds 12.5" in text
    assert 'mailhaul_accounts{state="ok"} 2.0' in text
    assert 'mailhaul_accounts{state="paused"} 1.0' in text
    assert "mailhaul_running_polls 1.0" in text


def test_scrape_answers_when_the_database_does_not():
    def down() -> LiveGauges:
        raise errors.StorageError("database error: connection refused")

    metrics = Metrics(live=down)
    text = metrics.exposition().decode()
    assert "mailhaul_database_up 0.0" in text
    assert "mailhaul_queue_lag_seconds " not in text
    assert "mailhaul_polls_total" in text


def test_live_gauges_from_the_database(imap: Harness):
    app = imap.app
    now = time.time()
    overdue, paused, running, future, disabled = (imap.add() for _ in range(5))
    with app.db.begin() as conn:
        for account, values in (
            (overdue, {"next_poll_at": now - 100, "state": "ok"}),
            (paused, {"next_poll_at": now - 5000, "paused_reason": "5 login failures"}),
            (
                running,
                {"next_poll_at": now - 4000, "lease_owner": "h:1:x", "lease_expires": now + 60},
            ),
            (future, {"next_poll_at": now + 100, "state": "error"}),
            (disabled, {"next_poll_at": now - 9000, "active": False}),
        ):
            conn.execute(update(accounts).where(accounts.c.id == account.id).values(**values))
    live = StatusService(app.db).live(now)
    assert live.queue_lag_seconds == pytest.approx(100, abs=0.01)
    assert live.running_polls == 1
    assert live.accounts_by_state == {"ok": 1, "paused": 1, "running": 1, "error": 1, "new": 1}
    text = Metrics(live=lambda: StatusService(app.db).live(now)).exposition().decode()
    assert "mailhaul_queue_lag_seconds 100.0" in text


def test_a_fetch_request_makes_an_account_due_for_the_lag(imap: Harness):
    app = imap.app
    now = time.time()
    account = imap.add()
    with app.db.begin() as conn:
        conn.execute(
            update(accounts)
            .where(accounts.c.id == account.id)
            .values(next_poll_at=now + 300, fetch_requested_at=now - 30)
        )
    assert StatusService(app.db).live(now).queue_lag_seconds == pytest.approx(30, abs=0.01)


def test_no_due_account_means_no_lag(imap: Harness):
    imap.app.accounts.set_active(imap.add().id, False)
    assert StatusService(imap.app.db).live().queue_lag_seconds == 0.0
