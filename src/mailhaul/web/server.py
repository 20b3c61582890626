"""uvicorn in a background thread of the `mailhaul serve` process."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from mailhaul.domain.errors import ConfigError

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0


def parse_listen(listen: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:8025`` for IPv6) of setting ``web.listen``; None when ``""``."""
    listen = listen.strip()
    if not listen:
        return None
    host, sep, port = listen.rpartition(":")
    host = host.strip()
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"setting web.listen must be host:port or empty, not {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"web.listen: cannot resolve {host!r}: {exc}") from exc
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"web.listen: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


class HttpServer:
    """A running uvicorn; `stop()` ends it and waits for its thread."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8025``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish open requests (briefly) and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)


def start_http(
    app: ASGIApp,
    host: str,
    port: int,
    trusted_proxies: tuple[str, ...] = (),
    startup_timeout: float = STARTUP_TIMEOUT,
) -> HttpServer:
    """Serve ``app`` on ``host:port`` (port 0: any free one) from a daemon thread.

    ``X-Forwarded-For``/``-Proto`` are believed only from ``trusted_proxies`` (addresses or
    networks; none by default): uvicorn would otherwise trust them from 127.0.0.1, and any
    local client could then pose as another address, past the login throttle.

    Raises ConfigError when the address cannot be bound, or the server does not start.
    """
    sock = _bind(host, port)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        log_config=None,  # keep mailhaul's logging (logsetup) as it is
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=_run, args=(server, sock), name=f"http-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(1.0)
            with contextlib.suppress(OSError):
                sock.close()
            raise ConfigError(f"the web server on {host}:{bound_port} did not start")
        time.sleep(0.02)
    logger.info("http: listening on %s:%d (web UI, /api/v1, /healthz, /metrics)", host, bound_port)
    return HttpServer(server, thread, host, bound_port)


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        server.run(sockets=[sock])
    except BaseException:  # SystemExit on a failed startup, or a bug: log, never crash serve
        logger.exception("http: the web server stopped")
