"""rspamd's normal worker: ``POST /checkv2`` with the spooled message as the body.

The request headers tell rspamd who sent the message to the source server and for whom
(``IP``, ``Helo``, ``Hostname``, ``From``, ``Rcpt``, from the source's ``Received:`` line and
the message's ``Return-Path``), so its SPF, HELO, reverse-DNS and envelope rules do not
judge mailhaul's own connection.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from mailhaul.adapters.scanners.channel import BLOCK
from mailhaul.domain.errors import ConfigError, ScannerUnavailable
from mailhaul.domain.filtering import SenderContext, SpamVerdict

NAME = "rspamd"
MAX_ANSWER = 1024 * 1024
SPAM_ACTIONS = frozenset({"reject", "add header", "rewrite subject"})


class RspamdScanner:
    """Asks rspamd at ``url`` (``http://host:11333``) about one message."""

    name = NAME

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"setting filter.rspamd must be an http:// or https:// address, not {url!r}"
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 11333)
        self._path = (parts.path.rstrip("/") or "") + "/checkv2"
        self._timeout = timeout

    def check(self, spool: BinaryIO, size: int, sender: SenderContext) -> SpamVerdict:
        """The verdict on the spooled message; ScannerUnavailable if there is none."""
        headers = {"Content-Length": str(size)}
        for key, value in (
            ("IP", sender.ip),
            ("Helo", sender.helo),
            ("Hostname", sender.hostname),
            ("From", sender.mail_from),
            ("Rcpt", sender.rcpt),
        ):
            if value and value.isascii() and value.isprintable():
                headers[key] = value
        conn = self._connection()
        deadline = time.monotonic() + 3 * self._timeout
        try:
            spool.seek(0)
            conn.request("POST", self._path, body=spool, headers=headers)
            response = conn.getresponse()
            body = bytearray()
            while chunk := response.read(BLOCK):
                body += chunk
                if len(body) > MAX_ANSWER or time.monotonic() > deadline:
                    raise ScannerUnavailable(NAME, "an answer too long or too slow")
        except (OSError, http.client.HTTPException) as exc:
            raise _failure(exc, self._timeout) from exc
        finally:
            conn.close()
        if response.status != 200:
            raise ScannerUnavailable(NAME, f"it answered HTTP {response.status}")
        return _verdict(bytes(body))

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=self._timeout,
                context=ssl.create_default_context(),
                blocksize=BLOCK,
            )
        return http.client.HTTPConnection(
            self._host, self._port, timeout=self._timeout, blocksize=BLOCK
        )


def _failure(exc: BaseException, timeout: float) -> ScannerUnavailable:
    if isinstance(exc, TimeoutError):
        return ScannerUnavailable(NAME, f"no answer within {timeout:g} s")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ScannerUnavailable(NAME, f"cannot check the message: {reason}")


def _verdict(body: bytes) -> SpamVerdict:
    try:
        answer: Any = json.loads(body)
        score = float(answer["score"])
        threshold = float(answer.get("required_score", 0.0))
        action = str(answer.get("action", ""))
        symbols = answer.get("symbols") or {}
        if not isinstance(symbols, dict):
            raise TypeError("symbols")
    except (ValueError, KeyError, TypeError) as exc:
        raise ScannerUnavailable(NAME, f"an answer that is not rspamd's ({exc})") from None
    rules = tuple(sorted(str(name) for name in symbols))
    return SpamVerdict(
        NAME, score=score, threshold=threshold, is_spam=action in SPAM_ACTIONS, rules=rules
    )
