"""What the scripted POP3 and IMAP servers need to play Gmail and Microsoft 365 at OAuth2
sign-in: reading an XOAUTH2 or OAUTHBEARER response byte for byte, and Gmail's error
challenge (from Google's "OAuth 2.0 Mechanism" page)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

GMAIL_CHALLENGE = base64.b64encode(
    json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}).encode()
).decode()
"""The base64 JSON Gmail sends after ``+ `` when it refuses a token."""


@dataclass(frozen=True)
class OAuthLogin:
    """A client's OAuth2 response, as read: who, which token, and (OAUTHBEARER) where."""

    user: str
    token: str
    host: str = ""
    port: str = ""


def read_response(mechanism: str, text: str) -> OAuthLogin | None:
    """The login in an XOAUTH2 / OAUTHBEARER response; None when it is malformed (wrong
    separators, no ``Bearer``, a missing GS2 header): a server answers that with BAD."""
    try:
        raw = base64.b64decode(text.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if mechanism == "XOAUTH2":
        parts = raw.split("\x01")
        if len(parts) != 4 or parts[2:] != ["", ""]:
            return None
        user, auth = parts[0], parts[1]
        if not user.startswith("user=") or not auth.startswith("auth=Bearer "):
            return None
        return OAuthLogin(user.removeprefix("user="), auth.removeprefix("auth=Bearer "))
    header, sep, rest = raw.partition("\x01")
    if not sep or not header.startswith("n,a=") or not header.endswith(","):
        return None
    fields = dict(item.split("=", 1) for item in rest.split("\x01") if "=" in item)
    if not rest.endswith("\x01\x01") or not fields.get("auth", "").startswith("Bearer "):
        return None
    user = header.removeprefix("n,a=").removesuffix(",").replace("=2C", ",").replace("=3D", "=")
    return OAuthLogin(
        user,
        fields["auth"].removeprefix("Bearer "),
        fields.get("host", ""),
        fields.get("port", ""),
    )
