"""OAuth2 accounts from the command line, up to the point where a provider must answer:
added without a password, waiting in "sign-in needed" (not polled, fetch exits 5), and
`account connect` failing plainly when the provider cannot help. The flows against a real
authorization server are in tests/integration/test_oauth_sign_in.py."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest

from support.cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh", MAILHAUL_WEB_LISTEN="")
    cli.ok("init")
    return cli


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_oauth_account(cli: Cli, provider: str) -> int:
    added = cli(
        "account", "add", "--owner", "me@example.org", "--protocol", "imap",
        "--host", "imap.example.net", "--username", "me@example.net",
        "--auth", "oauth2", "--oauth-provider", provider,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"mailhaul account connect {added.stdout.strip()}" in added.stderr
    return int(added.stdout)


def test_an_oauth_account_waits_for_its_sign_in_and_is_not_fetched(cli: Cli) -> None:
    port = closed_port()
    cli.ok(
        "oauth", "provider", "add", "lab", "--device-url", f"http://127.0.0.1:{port}/device",
        "--token-url", f"http://127.0.0.1:{port}/token", "--scope", "mail",
        "--client-id", "lab",
    )  # fmt: skip
    account_id = add_oauth_account(cli, "lab")
    shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert shown["sign_in"] == "oauth2" and shown["state"] == "sign-in needed"
    assert shown["sign_in_problem"] == "not connected yet"
    assert "sign-in needed: not connected yet" in cli.ok("account", "show", str(account_id))
    fetched = cli("fetch", str(account_id), "--json")
    assert fetched.returncode == 5, fetched.stderr
    [result] = json.loads(fetched.stdout)
    assert result["result"] == "sign-in needed"
    assert f"mailhaul account connect {account_id}" in result["error"]
    assert json.loads(cli.ok("runs", str(account_id), "--json")) == []  # nothing was tried
    # the provider is down: a plain temporary error, the account still waits
    connect = cli("account", "connect", str(account_id))
    assert connect.returncode == 1
    assert "lab's authorization server cannot be reached" in connect.stderr
    assert "Traceback" not in connect.stderr
    again = json.loads(cli.ok("account", "show", str(account_id), "--json"))
    assert again["state"] == "sign-in needed"
    # the control: a password account beside it is fetched (and fails on its closed port)
    password_account = cli(
        "account", "add", "--owner", "me@example.org", "--host", "127.0.0.1",
        "--port", str(port), "--security", "none", "--username", "u", "--password-stdin",
        stdin="pw\n",
    )  # fmt: skip
    assert password_account.returncode == 0, password_account.stderr
    tried = cli("fetch", password_account.stdout.strip(), "--json")
    assert tried.returncode == 1 and json.loads(tried.stdout)[0]["result"] == "error"


def test_oauth_accounts_are_refused_plainly_when_the_line_does_not_fit(cli: Cli) -> None:
    cli.ok("oauth", "provider", "add", "google", "--preset", "google", "--client-id", "id")
    base = [
        "account", "add", "--owner", "me@example.org", "--host", "imap.gmail.com",
        "--protocol", "imap", "--username", "me@gmail.com",
    ]  # fmt: skip
    cases = [
        (["--auth", "oauth2"], "needs --oauth-provider"),
        (["--auth", "oauth2", "--oauth-provider", "google", "--password-stdin"], "no password"),
        (["--oauth-provider", "google", "--password-stdin"], "goes with --auth oauth2"),
    ]
    for extra, why in cases:
        refused = cli(*base, *extra, stdin="pw\n")
        assert refused.returncode == 2, (extra, refused.stderr)
        assert why in refused.stderr
    missing = cli(*base, "--auth", "oauth2", "--oauth-provider", "nope")
    assert missing.returncode == 3 and "no OAuth provider 'nope'" in missing.stderr
    account_id = add_oauth_account(cli, "google")
    no_device = cli("account", "connect", str(account_id))
    assert no_device.returncode == 2
    assert "google has no device flow: connect the account in the web UI" in no_device.stderr
    in_use = cli("oauth", "provider", "delete", "google")
    assert in_use.returncode == 2 and "1 account(s) sign in through 'google'" in in_use.stderr
    password_account = cli(
        "account", "add", "--owner", "me@example.org", "--host", "127.0.0.1", "--port", "9",
        "--username", "u", "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    not_oauth = cli("account", "connect", password_account.stdout.strip())
    assert not_oauth.returncode == 2 and "does not sign in with OAuth2" in not_oauth.stderr


def test_account_connect_runs_the_device_flow_as_a_user_types_it(cli: Cli) -> None:
    import subprocess

    from support.cli import MAILHAUL
    from support.oauth_server import OAuthTestServer

    with OAuthTestServer(consent_user="me@example.net") as idp:
        idp.add_client("lab")
        ends = idp.endpoints()
        cli.ok(
            "oauth", "provider", "add", "lab", "--token-url", ends["token_url"],
            "--device-url", ends["device_url"], "--scope", "mail offline_access",
            "--client-id", "lab",
        )  # fmt: skip
        account_id = add_oauth_account(cli, "lab")
        waiting = subprocess.Popen(
            [*MAILHAUL, "account", "connect", str(account_id), "--json"],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiting.stdout is not None
        first = json.loads(waiting.stdout.readline())
        assert set(first) == {
            "verification_uri", "verification_uri_complete", "user_code", "expires_in"
        }  # fmt: skip
        assert first["verification_uri"] == f"{idp.base}/device"
        assert first["user_code"] == idp.last_user_code() and first["expires_in"] > 0
        assert waiting.poll() is None  # it waits for the approval
        idp.approve_device(first["user_code"])
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert json.loads(out) == {"account_id": account_id, "sign_in": "connected"}
        shown = json.loads(cli.ok("account", "show", str(account_id), "--json"))
        assert shown["sign_in_problem"] is None and shown["state"] == "new"
        issued = [t.access_token for t in idp.state.tokens] + [
            t.refresh_token for t in idp.state.tokens
        ]
        everything = out + err + cli.ok("account", "show", str(account_id), "--json")
        everything += cli.ok("export", "--json") + cli.database.read_bytes().decode("latin-1")
        encoded = [base64.b64encode(token.encode()).decode() for token in issued]
        assert issued and not any(token in everything for token in issued + encoded)


def test_a_preset_provider_fills_in_its_server(cli: Cli) -> None:
    cli.ok("oauth", "provider", "add", "google", "--preset", "google", "--client-id", "id")
    added = cli(
        "account", "add", "--owner", "me@example.org", "--protocol", "imap",
        "--username", "me@gmail.com", "--auth", "oauth2", "--oauth-provider", "google", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = json.loads(added.stdout)
    assert (shown["host"], shown["port"], shown["security"]) == ("imap.gmail.com", 993, "ssl")
    no_host = cli(
        "account", "add", "--owner", "me@example.org", "--username", "u", "--password-stdin",
        stdin="pw\n",
    )  # fmt: skip
    assert no_host.returncode == 2 and "--host is needed" in no_host.stderr
