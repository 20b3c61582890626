"""A webhook receiver on loopback for the tests: it checks each POST's HMAC signature and
records what came; ``fail_next`` makes it answer 500 a number of times first."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it."""

    event: str
    delivery: str
    signed: bool  # the signature matched the body
    body: dict[str, Any]
    raw: bytes


class WebhookReceiver:
    """Listens on 127.0.0.1; ``url`` is where to POST."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.received: list[Received] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = "sha256=" + hmac.new(receiver.key, raw, hashlib.sha256).hexdigest()
                given = self.headers.get("X-Mailhaul-Signature", "")
                receiver.received.append(
                    Received(
                        self.headers.get("X-Mailhaul-Event", ""),
                        self.headers.get("X-Mailhaul-Delivery", ""),
                        hmac.compare_digest(expected, given),
                        json.loads(raw),
                        raw,
                    )
                )
                status = 200
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/mailhaul"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
