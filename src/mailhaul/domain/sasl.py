"""The SASL exchanges that carry an OAuth2 access token (pure): XOAUTH2 (Google's and
Microsoft's) and OAUTHBEARER (RFC 7628), and the error challenge a server sends instead of
accepting a token.

XOAUTH2 is ``user=U^Aauth=Bearer T^A^A``; OAUTHBEARER adds a GS2 header and the server's
host and port: ``n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A`` (both base64 on the wire). A
refused token is answered with a base64 JSON challenge (``{"status":"401","schemes":
"bearer","scope":"…"}``); the client answers it (XOAUTH2: an empty line; OAUTHBEARER: a
single ``^A``, RFC 7628 §3.2.3) and reads the failure that follows.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
OAUTHBEARER_ERROR_REPLY = base64.b64encode(b"\x01").decode("ascii")
"""What an OAUTHBEARER client sends after an error challenge (RFC 7628 §3.2.3)."""
XOAUTH2_ERROR_REPLY = ""
"""What an XOAUTH2 client sends after an error challenge (an empty line)."""


def _b64(raw: str) -> str:
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def xoauth2_response(username: str, token: str) -> str:
    """The XOAUTH2 initial response, base64."""
    return _b64(f"user={username}\x01auth=Bearer {token}\x01\x01")


def _gs2_name(username: str) -> str:
    """A name in a GS2 header: ``=`` and ``,`` escaped (RFC 5801 §4)."""
    return username.replace("=", "=3D").replace(",", "=2C")


def oauthbearer_response(username: str, token: str, host: str, port: int) -> str:
    """The OAUTHBEARER initial response (RFC 7628 §3.1), base64."""
    return _b64(
        f"n,a={_gs2_name(username)},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    )


@dataclass(frozen=True)
class OAuthChallenge:
    """What a server said when it refused a token; empty fields when it said nothing
    readable."""

    status: str = ""
    scope: str = ""

    def describe(self) -> str:
        """``status 401, scope https://mail.google.com/``, or "" when nothing was said."""
        parts = [f"status {self.status}" if self.status else ""]
        parts.append(f"scope {self.scope}" if self.scope else "")
        return ", ".join(part for part in parts if part)


def parse_challenge(text: str) -> OAuthChallenge:
    """The base64 JSON error challenge a server sends after a refused token; garbage (a
    hostile or odd server) gives an empty challenge, never an exception."""
    try:
        raw = base64.b64decode(text.strip()[:4096], validate=True)
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return OAuthChallenge()
    if not isinstance(data, dict):
        return OAuthChallenge()
    status, scope = data.get("status", ""), data.get("scope", "")
    return OAuthChallenge(
        status=_printable(status if isinstance(status, str | int) else ""),
        scope=_printable(scope if isinstance(scope, str) else ""),
    )


def _printable(value: str | int) -> str:
    text = str(value)[:200]
    return "".join(ch for ch in text if ch.isprintable())
