"""Applying imports to a real SQLite home: create, update, skip, dry-run, JSON round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhaul.adapters.db.records import MessageRecords
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.errors import ConfigError
from mailhaul.importers.rules import parse_rules
from mailhaul.services.export import export_data, parse_export, state_reader
from mailhaul.services.import_state import FetchidsState
from mailhaul.services.importing import ImportDefaults, ImportService
from mailhaul.settings import load_settings

RULES = """\
pop.example.net:pop3 petrov secret1 i.petrov@mydomain.test keep ssl
imap.example.net:imap anna secret2 anna@mydomain.test ssl
imap.example.net:imap anna other anna@mydomain.test ssl
pop.example.net:pop3 bad secret x@@mydomain.test ssl
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = load_settings(tmp_path / "home", {}, environ={})
    init_home(settings)
    app = App(settings)
    yield app
    app.db.dispose()


def run(app: App, text: str = RULES, dry_run: bool = False, **kwargs):
    service = ImportService(app.accounts)
    return service.apply(
        "rules", parse_rules(text, "rules"), ImportDefaults(), dry_run=dry_run, **kwargs
    )


def test_dry_run_writes_nothing_and_says_what_would_happen(app: App):
    summary = run(app, dry_run=True)
    assert (summary.count("created"), summary.count("skipped")) == (2, 2)
    assert app.accounts.list_all() == []


def test_import_creates_skips_with_reasons_and_reimport_changes_nothing(app: App):
    summary = run(app)
    assert summary.count("created") == 2
    reasons = {o.source: o.reason for o in summary.outcomes if o.action == "skipped"}
    assert reasons["rules:3"] == "the same account as rules:2"
    assert "is not an e-mail address" in reasons["rules:4"]
    again = run(app)
    assert (again.count("created"), again.count("unchanged")) == (0, 2)
    assert len(app.accounts.list_all()) == 2


def test_a_changed_option_or_password_updates_the_same_account(app: App):
    run(app)
    [petrov_id] = [a.id for a in app.accounts.list_all() if a.spec.username == "petrov"]
    summary = run(app, "pop.example.net:pop3 petrov new-pw i.petrov@mydomain.test ssl\n")
    assert [o.action for o in summary.outcomes] == ["updated"]
    account = app.accounts.get(petrov_id)
    assert account.spec.options.keep is False
    with app.db.begin() as conn:
        token = app.account_store.password_token(conn, petrov_id)
    assert app.secret_box.decrypt(token, petrov_id) == "new-pw"


def test_fetchids_state_is_written_once(app: App):
    ids = FetchidsState("petrov@pop.example.net 0001aaaa\npetrov@pop.example.net 0002aaaa\n", "f")
    summary = run(app, state_for=ids)
    [petrov] = [o for o in summary.outcomes if o.action == "created" and "petrov" in o.description]
    assert petrov.seen == 2
    again = run(app, state_for=FetchidsState("petrov@pop.example.net 0001aaaa\n", "f"))
    assert sum(o.seen for o in again.outcomes) == 0
    with app.db.begin() as conn:
        known = MessageRecords().known(conn, petrov.account_id or 0, "INBOX", 0)
    assert known.delivered == {"0001aaaa", "0002aaaa"}


def test_new_account_is_switched_on_only_after_its_state(app: App):
    run(app, state_for=FetchidsState("petrov@pop.example.net 1\n", "f"))
    assert all(a.spec.active for a in app.accounts.list_all())


def test_json_round_trip_with_passwords(app: App, tmp_path: Path):
    run(app, state_for=FetchidsState("petrov@pop.example.net 0001aaaa\n", "f"))
    data = export_data(app.accounts, passphrase="correct horse")
    assert "secret1" not in str(data)
    other = load_settings(tmp_path / "other", {}, environ={})
    init_home(other)
    fresh = App(other)
    parsed, states = parse_export(data, "export.json", "correct horse")
    summary = ImportService(fresh.accounts).apply(
        "json", parsed, ImportDefaults(), state_for=state_reader(states)
    )
    assert summary.count("created") == 2
    copy = export_data(fresh.accounts)

    def strip(d):
        return [
            {k: v for k, v in a.items() if k not in ("id", "last_run_at", "last_result")}
            for a in d["accounts"]
        ]

    assert strip(copy) == strip(export_data(app.accounts))
    with pytest.raises(ConfigError, match="wrong passphrase"):
        parse_export(data, "export.json", "wrong")
    fresh.db.dispose()


def test_json_without_passwords_creates_accounts_switched_off(app: App, tmp_path: Path):
    run(app)
    data = export_data(app.accounts)
    other = load_settings(tmp_path / "other", {}, environ={})
    init_home(other)
    fresh = App(other)
    parsed, _states = parse_export(data, "export.json", None)
    summary = ImportService(fresh.accounts).apply("json", parsed, ImportDefaults())
    assert summary.count("created") == 2
    assert all(not a.spec.active for a in fresh.accounts.list_all())
    assert all("no password" in o.notes[-1] for o in summary.outcomes)
    fresh.db.dispose()
