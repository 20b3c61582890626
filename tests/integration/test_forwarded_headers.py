"""X-Forwarded-For is believed only from `web.trusted_proxies` (issue 19 S2).

The real uvicorn, on loopback: a client that rotates the header is still throttled at the
login as the one address it is, unless the request comes through a configured proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from mailhaul.bootstrap import App, init_home
from mailhaul.services.metrics import Metrics
from mailhaul.services.status import StatusService
from mailhaul.settings import load_settings
from mailhaul.web.app import create_app
from mailhaul.web.auth import CSRF_FIELD, LOGIN_CSRF_COOKIE
from mailhaul.web.server import start_http

pytestmark = pytest.mark.databases("sqlite")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = load_settings(tmp_path / "home", {}, environ={})
    init_home(settings)
    app = App(settings)
    yield app
    app.db.dispose()


def failed_logins(base: str, count: int) -> list[int]:
    """``count`` wrong logins, each under another name and another X-Forwarded-For."""
    statuses = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for n in range(count):
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            response = client.post(
                "/login",
                data={"login": f"nobody{n}", "password": "wrong", CSRF_FIELD: token.group(1)},
                headers={
                    "X-Forwarded-For": f"203.0.113.{n + 1}",
                    "Cookie": f"{LOGIN_CSRF_COOKIE}={token.group(1)}",
                },
            )
            statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize("trusted", [(), ("127.0.0.1",)], ids=["no proxy", "trusted proxy"])
def test_rotating_x_forwarded_for_does_not_escape_the_login_throttle(
    app: App, trusted: tuple[str, ...]
) -> None:
    metrics = Metrics(live=StatusService(app.db).live)
    server = start_http(create_app(app, metrics), "127.0.0.1", 0, trusted)
    try:
        statuses = failed_logins(f"http://127.0.0.1:{server.port}", 8)
    finally:
        server.stop()
    if trusted:  # through a trusted proxy each request comes from its own client address
        assert statuses == [401] * 8
    else:
        assert statuses[:4] == [401] * 4 and 429 in statuses[4:]
