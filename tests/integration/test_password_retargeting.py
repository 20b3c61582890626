"""A stored password goes only to the server it was entered for (issue 19 S1).

A catcher (a scripted IMAP server on loopback that records every login) stands where an
attacker would point an account: re-pointing host, port, protocol, TLS or CA file without
typing the password again is refused in the API, the web form and the CLI, and nothing
reaches the catcher. With the password typed again the change goes through (the positive
control), and only the new password travels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailhaul.bootstrap import App
from mailhaul.domain.access import Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.options import Protocol, Security
from support.api import PASSWORD, Api, Person, add_person, client_for, fake_dns, make_app
from support.pages import Browser
from support.scripted_imap import ImapScript, ScriptedImapServer

pytestmark = pytest.mark.databases("sqlite")

STORED = "the-stored-source-password"
NEW = "a-password-typed-again"


@dataclass
class Scene:
    app: App
    api: Api
    boss: Person
    catcher: ScriptedImapServer
    account_id: int

    def attack(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.catcher.port, "security": "none"}

    def caught(self) -> str:
        return bytes(self.catcher.received).decode("latin-1")


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    with ScriptedImapServer(ImapScript(username="u", password=NEW)) as catcher:
        overrides = {
            "sources.allow_private": True,  # this is not about the SSRF guard
            "sources.allowed_ports": f"110,143,993,995,{catcher.port}",
            "web.cookie_secure": False,  # the test client speaks plain HTTP
        }
        app = make_app(tmp_path / "home", overrides=overrides)
        fake_dns(app)
        _, client = client_for(app)
        boss = add_person(app, "boss", "boss@a.test", Role.DOMAIN_ADMIN, ("a.test",))
        spec = AccountSpec(
            owner="someone@a.test",
            protocol=Protocol.IMAP,
            host="mail.example.net",
            port=993,
            security=Security.SSL,
            username="u",
        )
        account = app.accounts.add(spec, STORED)
        yield Scene(app, Api(client, boss.key), boss, catcher, account.id)
        client.close()
        app.db.dispose()


@pytest.mark.parametrize(
    "change",
    [
        {"host": "127.0.0.1"},
        {"port": 143},
        {"protocol": "pop3"},
        {"security": "none"},
        {"verify_cert": False},
    ],
    ids=lambda change: next(iter(change)),
)
def test_an_api_change_that_re_targets_the_password_needs_it_again(
    scene: Scene, change: dict[str, Any]
) -> None:
    refused = scene.api.patch(f"/accounts/{scene.account_id}", change)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == "password"
    assert scene.app.accounts.get(scene.account_id).spec.host == "mail.example.net"
    assert scene.api.patch(f"/accounts/{scene.account_id}", {"keep": True}).status_code == 200


def test_patching_the_host_then_fetching_sends_nothing_to_the_new_host(scene: Scene) -> None:
    refused = scene.api.patch(f"/accounts/{scene.account_id}", scene.attack())
    assert refused.status_code == 422
    scene.app.poller.poll(scene.account_id)  # a Fetch now: still the stored server
    tested = scene.api.post(f"/accounts/{scene.account_id}/test", scene.attack())
    assert tested.status_code == 422, tested.text
    assert scene.catcher.sessions == 0 and STORED not in scene.caught()


def test_with_the_password_typed_again_the_change_goes_through(scene: Scene) -> None:
    moved = scene.api.patch(f"/accounts/{scene.account_id}", {**scene.attack(), "password": NEW})
    assert moved.status_code == 200, moved.text
    report = scene.api.post(f"/accounts/{scene.account_id}/test").json()
    assert report["ok"] is True, report
    assert NEW in scene.caught() and STORED not in scene.caught()


def test_the_web_form_asks_for_the_password_and_keeps_what_was_typed(scene: Scene) -> None:
    app = scene.app
    _, client = client_for(app)
    browser = Browser(client)
    assert browser.login("boss@a.test", PASSWORD).status_code == 303
    form = browser.get(f"/accounts/{scene.account_id}/edit").text
    assert "mail.example.net" in form
    fields = {
        "owner": "someone@a.test",
        "protocol": "imap",
        "security": "none",
        "host": "127.0.0.1",
        "port": str(scene.catcher.port),
        "username": "u",
        "password": "",
        "folders": "INBOX",
        "verify_cert": "on",
        "active": "on",
        "interval": "",
        "max_size": "",
        "deliver_to": "",
    }
    page = browser.post(f"/accounts/{scene.account_id}/edit", fields)
    assert page.status_code in (400, 422), page.status_code
    assert "enter the password again" in page.text
    assert 'value="127.0.0.1"' in page.text  # what was typed is kept
    tested = browser.post(f"/accounts/{scene.account_id}/test", fields)
    assert "enter the password again" in tested.text
    assert scene.catcher.sessions == 0
    client.close()


def test_the_cli_refuses_a_new_host_without_password_stdin(scene: Scene, tmp_path: Path) -> None:
    env = {**os.environ, "MAILHAUL_HOME": str(scene.app.settings.home)}
    edit = [sys.executable, "-m", "mailhaul", "account", "edit", str(scene.account_id)]
    target = ["--host", "127.0.0.1", "--port", str(scene.catcher.port), "--security", "none"]
    refused = subprocess.run(
        [*edit, *target], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 2, refused.stderr
    assert "enter the password again" in refused.stderr
    assert "Traceback" not in refused.stderr
    moved = subprocess.run(
        [*edit, *target, "--password-stdin"],
        env=env,
        input=NEW,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert moved.returncode == 0, moved.stderr
    assert scene.app.accounts.get(scene.account_id).spec.host == "127.0.0.1"
