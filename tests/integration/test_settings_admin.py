"""Settings an admin stores in the database (SQLite and PostgreSQL): the store, the service
that checks and saves them, and another process picking a change up without a restart
(a poll in progress keeping its sink: tests/unit/test_settings_refresh.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.adapters.db.stored_settings import StoredSettingsStore
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.access import Forbidden, Principal, Role
from mailhaul.domain.errors import ConfigError
from mailhaul.services.housekeeping import Housekeeping
from mailhaul.services.scheduler import PollLimits, Scheduler
from mailhaul.services.settings_admin import SettingsRejected
from mailhaul.settings import load_settings

ADMIN = Principal(user_id=1, login="admin", role=Role.ADMIN)
SYSTEM = Principal.system()


def app_for(home: Path, database_url: str, environ: dict[str, str] | None = None) -> App:
    settings = load_settings(home, {"database.url": database_url}, environ=environ or {})
    init_home(settings)
    return App(settings)


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = app_for(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


def test_the_store_keeps_json_values_and_who_changed_them(app: App):
    store = StoredSettingsStore()
    with app.db.begin() as conn:
        store.lock(conn)
        store.put(conn, "poll.interval", 600, 10.0, "admin")
        store.put(conn, "delivery.domains", {"a.test": {"method": "lmtp"}}, 11.0, "admin")
        store.put(conn, "poll.interval", 900, 12.0, "other")
    with app.db.begin() as conn:
        rows = store.all(conn)
        assert store.values(conn) == {
            "poll.interval": 900,
            "delivery.domains": {"a.test": {"method": "lmtp"}},
        }
        assert store.remove(conn, "poll.interval") is True
        assert store.remove(conn, "poll.interval") is False
    assert (rows["poll.interval"].updated_at, rows["poll.interval"].updated_by) == (12.0, "other")


def test_an_admin_changes_a_setting_and_sees_where_each_comes_from(app: App):
    admin = app.settings_admin
    before = admin.overview(ADMIN)
    assert before.value("poll.interval").source == "default"  # read before init wrote the file
    after = admin.change(ADMIN, {"poll.interval": "600", "sources.allow_private": True})
    interval = after.value("poll.interval")
    assert (interval.value, interval.source, interval.updated_by) == (600, "database", "admin")
    assert after.value("sources.allow_private").value is True
    assert app.settings.interval == 600  # this process applied it at once
    assert app.account_access.policy.allow_private is True
    back = admin.change(ADMIN, {"poll.interval": None})
    assert back.value("poll.interval").source == "default"
    assert app.settings.interval == 300


def test_nothing_is_stored_unless_every_change_is_valid(app: App):
    with pytest.raises(SettingsRejected) as caught:
        app.settings_admin.change(
            ADMIN,
            {"poll.interval": 600, "poll.max_size": 0, "runs.keep_days": "x", "web.listen": "x"},
        )
    assert caught.value.errors == {"web.listen": "is not a setting that can be changed here"}
    with pytest.raises(SettingsRejected) as caught:
        app.settings_admin.change(
            ADMIN, {"poll.interval": 600, "poll.max_size": 0, "runs.keep_days": "x"}
        )
    assert caught.value.errors == {
        "poll.max_size": "must be positive",
        "runs.keep_days": "must be a whole number, not 'x'",
    }
    assert app.settings_admin.overview(ADMIN).value("poll.interval").value == 300


def test_only_an_admin_may_see_or_change_settings(app: App):
    for role in (Role.DOMAIN_ADMIN, Role.USER):
        someone = Principal(user_id=2, login="x@a.test", role=role, domains=frozenset({"a.test"}))
        with pytest.raises(Forbidden):
            app.settings_admin.overview(someone)
        with pytest.raises(Forbidden):
            app.settings_admin.change(someone, {"poll.interval": 600})


def test_a_setting_from_the_environment_cannot_be_changed(tmp_path: Path, database_url: str):
    app = app_for(tmp_path / "home", database_url, {"MAILHAUL_POLL_INTERVAL": "60"})
    try:
        item = app.settings_admin.overview(ADMIN).value("poll.interval")
        assert (item.source, item.editable, item.value) == ("environment", False, 60)
        with pytest.raises(SettingsRejected, match="set by the environment") as caught:
            app.settings_admin.change(ADMIN, {"poll.interval": 600})
        assert set(caught.value.errors) == {"poll.interval"}
    finally:
        app.db.dispose()


def test_domains_are_added_changed_and_removed(app: App):
    admin = app.settings_admin
    admin.change(
        ADMIN,
        {"delivery.domains": {"LMTP.test": {"method": "lmtp", "lmtp": "127.0.0.1:24"}}},
    )
    admin.change(ADMIN, {"delivery.domains.smtp.test": {"method": "smtp", "smtp": "relay:25"}})
    domains = {d.domain: d for d in admin.overview(ADMIN).domains}
    assert set(domains) == {"lmtp.test", "smtp.test"}
    assert domains["lmtp.test"].sources["method"] == "database"
    assert domains["lmtp.test"].sources["timeout"] == "default"
    assert app.settings.delivery_domains["smtp.test"].smtp == "relay:25"
    with pytest.raises(SettingsRejected) as caught:
        admin.change(ADMIN, {"delivery.domains": {"smtp.test": {"method": "mda"}}})
    assert caught.value.errors == {
        'delivery.domains."smtp.test".method': "method must be one of maildir, lmtp, smtp"
    }
    admin.change(ADMIN, {"delivery.domains": {"lmtp.test": None}})
    assert [d.domain for d in admin.overview(ADMIN).domains] == ["smtp.test"]
    assert admin.unset(SYSTEM, "delivery.domains.smtp.test") is True
    assert admin.overview(ADMIN).domains == []
    assert app.settings.delivery_domains == {}


def test_a_stored_value_that_no_longer_fits_is_reported_and_can_be_unset(
    tmp_path: Path, database_url: str
):
    app = app_for(tmp_path / "home", database_url)
    with app.db.begin() as conn:  # as if mailhaul.toml had changed under it
        StoredSettingsStore().put(conn, "poll.max_size", -5, time.time(), "admin")
    with pytest.raises(ConfigError, match=r"mailhaul settings unset poll.max_size"):
        app.refresh_settings()
    assert app.settings.max_size == 104857600  # what was in force stays
    assert "poll.max_size" in app.settings_admin.overview(ADMIN).problem
    assert app.settings_admin.unset(ADMIN, "poll.max_size") is True
    assert app.refresh_settings() is False  # nothing left to apply
    app.db.dispose()


def test_another_process_picks_a_change_up_at_its_next_heartbeat(tmp_path: Path, database_url: str):
    worker = app_for(tmp_path / "worker", database_url)
    panel = app_for(tmp_path / "panel", database_url)
    scheduler = Scheduler(worker.db, worker.account_store, worker.poller, PollLimits(workers=1))
    housekeeping = Housekeeping(worker, scheduler)
    scheduler.periodic = housekeeping
    thread = threading.Thread(target=scheduler.run, kwargs={"grace": 5})
    thread.start()
    try:
        panel.settings_admin.change(
            ADMIN,
            {
                "poll.per_host_limit": 2,
                "poll.max_backoff": 60,
                "poll.auth_failures_to_pause": 2,
                "sources.allowed_ports": "993",
                "runs.keep_days": 3,
                "poll.interval": 900,
            },
        )
        deadline = time.monotonic() + 12
        while scheduler.per_host_limit != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.stop.set()
        thread.join(timeout=10)
    assert scheduler.per_host_limit == 2
    assert (worker.poller.policy.max_backoff, worker.poller.policy.auth_failures_to_pause) == (
        60.0,
        2,
    )
    assert worker.account_access.policy.allowed_ports == {993}
    assert (worker.settings.runs_keep_days, worker.settings.interval) == (3, 900)
    assert scheduler.poller is worker.poller
    worker.db.dispose()
    panel.db.dispose()
