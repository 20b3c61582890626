"""`mailhaul oauth provider …` as an admin types it: presets, endpoints, the secret kept
write-only, clear refusals, and `key rotate` covering client secrets."""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mailhaul.adapters.secrets import Purpose, SecretBox
from support.cli import Cli

SECRET = "s3cr3t-client-value-0123456789"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "mh", MAILHAUL_WEB_LISTEN="")
    cli.ok("init")
    return cli


def _secret_column(cli: Cli) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(cli.database)) as conn:
        return conn.execute("SELECT id, client_secret_enc FROM oauth_providers").fetchall()


def test_a_preset_provider_is_registered_and_its_secret_never_comes_back(cli: Cli) -> None:
    added = cli(
        "oauth", "provider", "add", "m365", "--preset", "microsoft",
        "--tenant", "contoso.onmicrosoft.com", "--client-id", "app-id", "--client-secret-stdin",
        stdin=SECRET + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    provider_id = int(added.stdout)
    shown = json.loads(cli.ok("oauth", "provider", "show", "m365", "--json"))
    assert shown["has_client_secret"] is True
    assert shown["token_url"] == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert shown["preset"] == "microsoft" and shown["grant"] == "user"
    listed = cli.ok("oauth", "provider", "list", "--json")
    table = cli.ok("oauth", "provider", "list")
    plain = cli.ok("oauth", "provider", "show", "m365")
    assert "m365" in table and "microsoft (contoso.onmicrosoft.com)" in table
    everything = listed + table + plain + json.dumps(shown)
    encoded = base64.b64encode(SECRET.encode()).decode()
    assert SECRET not in everything and encoded not in everything
    [(row_id, sealed)] = _secret_column(cli)
    assert row_id == provider_id and sealed.startswith("v1.") and SECRET not in sealed
    box = SecretBox(cli.home / "keys")
    assert box.decrypt(sealed, provider_id, Purpose.CLIENT_SECRET) == SECRET  # the control


def test_providers_by_endpoints_and_the_refusals_an_admin_can_act_on(cli: Cli) -> None:
    lab = cli(
        "oauth", "provider", "add", "lab", "--authorize-url", "http://127.0.0.1:9/authorize",
        "--token-url", "http://127.0.0.1:9/token", "--device-url", "http://127.0.0.1:9/device",
        "--scope", "mail offline_access", "--client-id", "lab-client", "--json",
    )  # fmt: skip
    assert lab.returncode == 0, lab.stderr
    assert json.loads(lab.stdout)["has_client_secret"] is False  # a public client
    refusals = {
        "https needed": (
            ["--token-url", "http://idp.example.org/token", "--authorize-url",
             "https://idp.example.org/a", "--scope", "mail"],
            "must use https",
        ),
        "no scope": (["--token-url", "https://idp.example.org/t", "--device-url",
                      "https://idp.example.org/d"], "scope is needed"),
        "two kinds": (["--preset", "google", "--issuer", "https://idp.example.org"],
                      "name one of"),
        "nothing": ([], "name one of --preset"),
        "tenant without microsoft": (["--preset", "google", "--tenant", "x"], "tenant"),
    }  # fmt: skip
    for name, (args, why) in refusals.items():
        refused = cli("oauth", "provider", "add", "p2", *args, "--client-id", "c")
        assert refused.returncode == 2, (name, refused.stdout, refused.stderr)
        assert why in refused.stderr, (name, refused.stderr)
        assert "Traceback" not in refused.stderr
    taken = cli("oauth", "provider", "add", "lab", "--preset", "google", "--client-id", "c")
    assert taken.returncode == 2 and "exists already" in taken.stderr
    missing = cli("oauth", "provider", "show", "nope")
    assert missing.returncode == 3 and "no OAuth provider 'nope'" in missing.stderr
    assert [p["name"] for p in json.loads(cli.ok("oauth", "provider", "list", "--json"))] == ["lab"]
    assert "deleted" in cli.ok("oauth", "provider", "delete", "lab")
    assert json.loads(cli.ok("oauth", "provider", "list", "--json")) == []


def test_key_rotate_re_encrypts_client_secrets(cli: Cli) -> None:
    cli.ok(
        "oauth", "provider", "add", "g", "--preset", "google", "--client-id", "id",
        "--client-secret-stdin", stdin=SECRET + "\n",
    )  # fmt: skip
    [(provider_id, before)] = _secret_column(cli)
    rotated = cli.ok("key", "rotate")
    assert "1 secret(s) re-encrypted" in rotated
    [(_, after)] = _secret_column(cli)
    box = SecretBox(cli.home / "keys")
    assert after != before and box.key_id_of(after) == box.current_key_id
    assert box.decrypt(after, provider_id, Purpose.CLIENT_SECRET) == SECRET
    with pytest.raises(Exception, match="not in"):
        box.decrypt(before, provider_id, Purpose.CLIENT_SECRET)  # the old key is gone
