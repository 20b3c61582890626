"""OAuth2's pure part: providers and presets, endpoint addresses, when tokens are refreshed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.oauth import (
    Endpoints,
    Grant,
    OAuthProvider,
    Preset,
    TokenSet,
    check_endpoint_url,
    preset_provider,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://login.example.org/token",
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
        "http://[::1]:9/token",
        "https://127.0.0.1/token",
    ],
)
def test_https_or_loopback_endpoints_are_taken(url: str) -> None:
    check_endpoint_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://idp.example.org/token", "https"),
        ("http://10.0.0.1/token", "https"),
        ("ftp://idp.example.org/token", "https://"),
        ("https:///token", "https://"),
        ("https://user:pw@idp.example.org/token", "user or password"),
        ("https://idp.example.org:99999/token", "not a URL"),
        ("idp.example.org/token", "https://"),
    ],
)
def test_other_endpoints_are_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        check_endpoint_url(url, "token")


def test_the_google_preset_has_no_device_flow_and_gmails_scope() -> None:
    google = preset_provider(Preset.GOOGLE, "google", "id.apps.googleusercontent.com")
    assert google.scope == "https://mail.google.com/"
    assert google.endpoints.device_url == ""
    assert google.endpoints.token_url == "https://oauth2.googleapis.com/token"
    google.check()
    with pytest.raises(ConfigError, match="client-credentials"):
        preset_provider(Preset.GOOGLE, "g", "id", grant=Grant.CLIENT_CREDENTIALS)


def test_the_microsoft_preset_names_the_tenant_and_the_mail_scopes() -> None:
    m365 = preset_provider(Preset.MICROSOFT, "m365", "id", tenant="contoso.onmicrosoft.com")
    assert m365.endpoints.token_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert m365.endpoints.device_url.endswith("/oauth2/v2.0/devicecode")
    assert "IMAP.AccessAsUser.All" in m365.scope and "offline_access" in m365.scope
    default = preset_provider(Preset.MICROSOFT, "ms", "id")
    assert "/common/" in default.endpoints.token_url
    app_only = preset_provider(
        Preset.MICROSOFT, "app", "id", tenant="contoso", grant=Grant.CLIENT_CREDENTIALS
    )
    assert app_only.scope == "https://outlook.office365.com/.default"
    with pytest.raises(ConfigError, match="own tenant"):
        preset_provider(Preset.MICROSOFT, "app", "id", grant=Grant.CLIENT_CREDENTIALS)
    with pytest.raises(ConfigError, match="tenant"):
        preset_provider(Preset.MICROSOFT, "bad", "id", tenant="a/b")


def test_a_provider_is_checked_as_a_whole() -> None:
    endpoints = Endpoints(token_url="https://idp.example.org/token")
    with pytest.raises(ConfigError, match="authorization URL or a device"):
        OAuthProvider("lab", "id", endpoints, "mail").check()
    with pytest.raises(ConfigError, match="client secret"):
        OAuthProvider("app", "id", endpoints, "mail", Grant.CLIENT_CREDENTIALS).check()
    OAuthProvider("app", "id", endpoints, "mail", Grant.CLIENT_CREDENTIALS, has_secret=True).check()
    with pytest.raises(ConfigError, match="name"):
        OAuthProvider(
            "a b", "id", endpoints, "mail", Grant.CLIENT_CREDENTIALS, has_secret=True
        ).check()


def test_tokens_are_refreshed_within_a_tenth_of_their_life() -> None:
    hour = TokenSet("a", "r", expires_at=3600.0, issued_at=0.0)
    assert not hour.needs_refresh(3000.0)
    assert hour.needs_refresh(3300.0)  # 300 s (the cap) before the end
    short = TokenSet("a", "r", expires_at=30.0, issued_at=0.0)
    assert not short.needs_refresh(24.0)
    assert short.needs_refresh(25.0)  # at least 5 s before the end
    assert not TokenSet("a", "r", expires_at=None).needs_refresh(1e12)  # unknown: use it
    assert TokenSet("", "r").needs_refresh(0.0)  # none yet


@given(life=st.floats(min_value=1, max_value=1e6), now=st.floats(min_value=0, max_value=2e6))
def test_an_expired_token_is_always_refreshed(life: float, now: float) -> None:
    tokens = TokenSet("a", "r", expires_at=life, issued_at=0.0)
    if now >= life:
        assert tokens.needs_refresh(now)
    if now < life - 300:
        assert not tokens.needs_refresh(now)


def test_a_refresh_keeps_the_refresh_token_unless_a_new_one_came() -> None:
    old = TokenSet("a1", "r1", 100.0, 0.0)
    assert old.refreshed(TokenSet("a2", "", 200.0, 100.0)).refresh_token == "r1"
    rotated = old.refreshed(TokenSet("a2", "r2", 200.0, 100.0))
    assert (rotated.access_token, rotated.refresh_token) == ("a2", "r2")
    assert "a2" not in repr(rotated) and "r2" not in repr(rotated)
