"""Process logging: stderr as text or JSON lines, optionally syslog (facility mail).

`configure_logging` replaces whatever handlers the root logger had, so calling it again
(e.g. after the settings are read) is safe. Secrets never reach this layer: run logs are
scrubbed by `services.runlog` before they are logged.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import sys
from datetime import UTC, datetime
from typing import IO, Any

from mailhaul.domain.errors import ConfigError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SYSLOG_FORMAT = "mailhaul[%(process)d]: %(levelname)s %(name)s: %(message)s"
DEV_LOG = "/dev/log"
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")
# Fields a caller may attach with ``extra={...}``; JSON lines carry them when present.
EXTRA_FIELDS = ("account", "run")

logger = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, and account/run when given."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (without the newline)."""
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().lower()
    if name not in LEVELS:
        raise ConfigError(f"setting log.level must be one of {', '.join(LEVELS)}, not {level!r}")
    return int(getattr(logging, name.upper()))


def _syslog_address(syslog: bool | str) -> str | tuple[str, int] | None:
    """``True``: /dev/log; a path: that socket; ``host:port``: UDP; ``False``/"": off."""
    if syslog is False or syslog == "":
        return None
    if syslog is True:
        return DEV_LOG
    if syslog.startswith("/"):
        return syslog
    host, sep, port = syslog.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"syslog address must be a socket path or host:port, not {syslog!r}")
    return host.strip("[]") or "localhost", int(port)


def _syslog_handler(address: str | tuple[str, int]) -> logging.Handler | None:
    if isinstance(address, str) and not os.path.exists(address):
        logger.warning(
            "syslog: %s does not exist (no syslog daemon?); logging to stderr only", address
        )
        return None
    try:
        handler = logging.handlers.SysLogHandler(
            address=address,
            facility=logging.handlers.SysLogHandler.LOG_MAIL,
            # a unix socket: datagram, else stream (SysLogHandler tries both); host:port: UDP
            socktype=None if isinstance(address, str) else socket.SOCK_DGRAM,
        )
    except OSError as exc:
        logger.warning("syslog: cannot connect to %s: %s; logging to stderr only", address, exc)
        return None
    handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    return handler


def configure_logging(
    format: str = "text",
    level: str | int = "info",
    syslog: bool | str = False,
    stream: IO[str] | None = None,
) -> None:
    """Log to stderr (``text`` or ``json`` lines) at ``level``, and to syslog if asked.

    ``syslog``: ``True`` for /dev/log (facility mail, so it lands in /var/log/maillog),
    a socket path, or ``host:port`` (UDP). A missing socket is a warning, not an error.
    Raises ConfigError for an unknown format or level.
    """
    if format not in FORMATS:
        raise ConfigError(f"setting log.format must be one of {', '.join(FORMATS)}, not {format!r}")
    numeric = _level(level)
    address = _syslog_address(syslog)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if getattr(old, "_mailhaul", False):
            old.close()
    stderr = logging.StreamHandler(stream or sys.stderr)
    stderr.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    _install(root, stderr)
    root.setLevel(numeric)
    # Alembic says which plugins and dialect it set up at INFO on every start: internals,
    # not news for an operator. Its warnings and errors still show; at debug, everything.
    quiet = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    logging.getLogger("alembic").setLevel(quiet)
    if address is not None:
        handler = _syslog_handler(address)
        if handler is not None:
            _install(root, handler)


def _install(root: logging.Logger, handler: logging.Handler) -> None:
    handler._mailhaul = True  # type: ignore[attr-defined]
    root.addHandler(handler)
