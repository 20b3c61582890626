"""`/healthz` and `/metrics` served by the real uvicorn in a background thread."""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from mailhaul.adapters.db.tables import accounts, workers
from mailhaul.bootstrap import App, init_home
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.options import Protocol, Security
from mailhaul.domain.scheduling import PollResult
from mailhaul.services.metrics import Metrics
from mailhaul.services.polling import RunSummary
from mailhaul.services.status import StatusService
from mailhaul.settings import load_settings
from mailhaul.web.app import create_app
from mailhaul.web.server import HttpServer, parse_listen, start_http


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def make_app(home: Path, database_url: str | None) -> App:
    overrides = {"database.url": database_url} if database_url else {}
    settings = load_settings(home, overrides, environ={})
    init_home(settings)
    return App(settings)


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.db.dispose()


@pytest.fixture
def serving(app: App) -> Iterator[tuple[HttpServer, Metrics]]:
    metrics = Metrics(live=StatusService(app.db).live)
    server = start_http(create_app(app, metrics), "127.0.0.1", 0)
    yield server, metrics
    server.stop()
    assert not server.running


def add_account(app: App) -> int:
    spec = AccountSpec(
        owner="owner@example.org",
        protocol=Protocol.IMAP,
        host="mail.example.net",
        port=993,
        security=Security.SSL,
        username="user",
    )
    return app.accounts.add(spec, "pw-not-in-metrics").id


def test_healthz_reports_workers_and_queue_lag(app: App, serving: tuple[HttpServer, Metrics]):
    server, _ = serving
    now = time.time()
    account_id = add_account(app)
    with app.db.begin() as conn:
        conn.execute(
            update(accounts).where(accounts.c.id == account_id).values(next_poll_at=now - 60)
        )
        for name, beat in (("live", now), ("gone", now - 3600)):
            conn.execute(
                insert(workers).values(
                    id=f"host:1:{name}", hostname="host", pid=1, started_at=now - 7200,
                    heartbeat_at=beat, running=0,
                )
            )  # fmt: skip
    status, body = get(f"{server.url}/healthz")
    assert status == 200
    data = json.loads(body)
    assert data["status"] == "ok"
    assert data["database"] == "ok"
    assert data["workers"] == 1
    assert 59 <= data["queue_lag_seconds"] < 120


def test_metrics_are_scraped_from_the_serve_registry(app: App, serving: tuple[HttpServer, Metrics]):
    server, metrics = serving
    add_account(app)
    metrics.observe(RunSummary(account_id=1, run_id=1, result=PollResult.OK, fetched=2, bytes=300))
    metrics.observe(RunSummary(account_id=1, run_id=2, result=PollResult.ERROR), "network")
    status, body = get(f"{server.url}/metrics")
    assert status == 200
    text = body.decode()
    assert 'mailhaul_polls_total{result="ok"} 1.0' in text
    assert 'mailhaul_polls_total{result="error"} 1.0' in text
    assert "mailhaul_messages_total 2.0" in text
    assert "mailhaul_bytes_total 300.0" in text
    assert 'mailhaul_errors_total{kind="network"} 1.0' in text
    assert "mailhaul_poll_duration_seconds_count 2.0" in text
    assert "mailhaul_database_up 1.0" in text
    assert "mailhaul_queue_lag_seconds " in text
    assert 'mailhaul_accounts{state="new"} 1.0' in text
    assert "mailhaul_running_polls 0.0" in text
    assert "pw-not-in-metrics" not in text
    # nothing leaked into the process-wide default registry
    assert get(f"{server.url}/metrics")[0] == 200


def test_healthz_is_503_when_the_sqlite_file_becomes_unreadable(tmp_path: Path):
    app = make_app(tmp_path / "home", None)
    metrics = Metrics(live=StatusService(app.db).live)
    server = start_http(create_app(app, metrics), "127.0.0.1", 0)
    try:
        assert get(f"{server.url}/healthz")[0] == 200
        db_file = tmp_path / "home" / "mailhaul.db"
        shutil.move(db_file, tmp_path / "moved.db")
        db_file.mkdir()  # a directory where the file was: not openable, even by root
        app.db.dispose()  # pooled connections would still hold the old file
        status, body = get(f"{server.url}/healthz")
        assert status == 503
        assert json.loads(body) == {"status": "error", "database": "unavailable"}
        status, body = get(f"{server.url}/metrics")
        assert status == 200
        assert "mailhaul_database_up 0.0" in body.decode()
    finally:
        server.stop()
        app.db.dispose()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthz_is_503_when_postgresql_is_not_listening(tmp_path: Path):
    url = f"postgresql://mailhaul@127.0.0.1:{closed_port()}/mailhaul"
    settings = load_settings(tmp_path / "home", {"database.url": url}, environ={})
    app = App(settings)
    server = start_http(create_app(app), "127.0.0.1", 0)
    try:
        status, body = get(f"{server.url}/healthz")
        assert status == 503
        assert json.loads(body)["database"] == "unavailable"
        status, body = get(f"{server.url}/metrics")
        assert status == 200
        assert "mailhaul_database_up 0.0" in body.decode()
    finally:
        server.stop()
        app.db.dispose()


def test_a_port_in_use_is_a_config_error(app: App, serving: tuple[HttpServer, Metrics]):
    server, _ = serving
    with pytest.raises(ConfigError, match="cannot listen"):
        start_http(create_app(app), "127.0.0.1", server.port)


@pytest.mark.parametrize(
    ("listen", "parsed"),
    [
        ("127.0.0.1:8025", ("127.0.0.1", 8025)),
        ("[::1]:9100", ("::1", 9100)),
        (":8025", ("127.0.0.1", 8025)),
        ("", None),
        ("  ", None),
    ],
)
def test_parse_listen(listen: str, parsed: tuple[str, int] | None):
    assert parse_listen(listen) == parsed


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_parse_listen_refuses_garbage(listen: str):
    with pytest.raises(ConfigError, match=r"web\.listen"):
        parse_listen(listen)


def test_web_listen_setting(tmp_path: Path):
    assert load_settings(tmp_path, environ={}).web_listen == "127.0.0.1:8025"
    assert load_settings(tmp_path, environ={"MAILHAUL_WEB_LISTEN": ":9000"}).web_listen == ":9000"
