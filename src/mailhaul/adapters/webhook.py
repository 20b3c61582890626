"""A webhook: one JSON POST, signed with HMAC-SHA256 over the exact body.

Headers: ``X-Mailhaul-Event`` (``account.failing`` …), ``X-Mailhaul-Delivery`` (the notice's
id: the same on every retry, so a receiver can drop a repeat) and ``X-Mailhaul-Signature:
sha256=<hex>``. A 2xx answer is success; anything else, a timeout or a refused connection is
a TemporaryDeliveryError (retried with backoff by the sender).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
from urllib.parse import urlsplit

from mailhaul.domain.errors import TemporaryDeliveryError

TIMEOUT = 10.0
MAX_ANSWER = 64 * 1024


def signature(key: bytes, body: bytes) -> str:
    """The ``X-Mailhaul-Signature`` value of a body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class Webhook:
    """POSTs events to ``url`` signed with ``key``."""

    def __init__(self, url: str, key: bytes, timeout: float = TIMEOUT) -> None:
        self.url = url
        self._key = key
        self._timeout = timeout

    def post(self, event: str, delivery: str, body: bytes) -> None:
        """Send one event; TemporaryDeliveryError unless the receiver answers 2xx."""
        parts = urlsplit(self.url)
        host, port = parts.hostname or "", parts.port
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=self._timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self._timeout)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mailhaul",
            "X-Mailhaul-Event": event,
            "X-Mailhaul-Delivery": delivery,
            "X-Mailhaul-Signature": signature(self._key, body),
        }
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(MAX_ANSWER)
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise TemporaryDeliveryError(f"webhook {host}: {reason}") from exc
        finally:
            conn.close()
        if not 200 <= response.status < 300:
            raise TemporaryDeliveryError(f"webhook {host} answered HTTP {response.status}")
