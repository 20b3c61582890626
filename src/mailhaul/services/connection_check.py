""" "Test connection": connect, log in and look at the folders; fetch and change nothing.

It runs in a web request, for whatever host a user typed: one answer may take at most
``CHECK_STEP`` seconds (or ``poll.timeout``, if shorter), the whole check ``CHECK_STEPS``
times that, and what it keeps (log lines, folder names) is bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailhaul.domain.account import AccountSpec
from mailhaul.domain.deadlines import RunGuard
from mailhaul.domain.errors import MailhaulError, error_kind
from mailhaul.domain.folders import RemoteFolder
from mailhaul.domain.options import Credentials, SourceEndpoint
from mailhaul.domain.ports import LogFn, MailSource
from mailhaul.domain.redaction import Redactor

SourceFactory = Callable[[SourceEndpoint, Credentials, LogFn], MailSource]

CHECK_STEP = 10.0
"""Longest wait for one answer during a check, in seconds (poll.timeout if shorter)."""
CHECK_STEPS = 4
"""The whole check's time limit in steps: connect, log in, list the folders, count them."""
MAX_LOG_LINES = 200
"""Log lines a check keeps (a chatty server could send millions)."""
MAX_SERVER_FOLDERS = 1000
"""Server folder names a check reports."""


@dataclass(frozen=True)
class ConnectionReport:
    """What a connection test found: the server's own words when it failed."""

    ok: bool
    message: str
    error_kind: str | None = None
    folders: dict[str, int] = field(default_factory=dict)  # configured folder -> messages
    server_folders: list[str] = field(default_factory=list)  # IMAP: every folder it has
    log: list[str] = field(default_factory=list)
    mailboxes: list[RemoteFolder] = field(default_factory=list)  # with separator, special use

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "ok": self.ok,
            "message": self.message,
            "error_kind": self.error_kind,
            "folders": self.folders,
            "server_folders": self.server_folders,
            "log": self.log,
        }


def check_connection(
    spec: AccountSpec, password: str, open_source: SourceFactory, timeout: float
) -> ConnectionReport:
    """Connect with ``spec``'s settings, authenticate and count each configured folder."""
    step = min(timeout, CHECK_STEP)
    with RunGuard(total=step * CHECK_STEPS).active():
        return _check(spec, password, open_source, step)


def _check(
    spec: AccountSpec, password: str, open_source: SourceFactory, timeout: float
) -> ConnectionReport:
    lines: list[str] = []
    credentials = Credentials(spec.username, password)
    scrub = Redactor.for_credentials(credentials)  # a server may echo what it was sent

    def log(line: str) -> None:
        if len(lines) < MAX_LOG_LINES:
            lines.append(scrub(line))
        elif len(lines) == MAX_LOG_LINES:
            lines.append("... more lines not kept")

    endpoint = spec.endpoint(timeout)
    source = open_source(endpoint, credentials, log)
    counts: dict[str, int] = {}
    server_folders: list[str] = []
    mailboxes: list[RemoteFolder] = []
    try:
        source.connect()
        mailboxes = source.list_mailboxes()[:MAX_SERVER_FOLDERS]
        server_folders = [folder.name for folder in mailboxes]
        for folder in spec.options.folders:
            counts[folder] = len(source.select(folder).messages)
    except MailhaulError as exc:
        source.abort()
        return ConnectionReport(
            ok=False, message=scrub(str(exc)), error_kind=error_kind(exc), log=lines,
            folders=counts, server_folders=server_folders,
        )  # fmt: skip
    except OSError as exc:
        source.abort()
        return ConnectionReport(ok=False, message=scrub(str(exc)), error_kind="network", log=lines)
    source.close()
    summary = ", ".join(f"{name}: {n} message(s)" for name, n in counts.items())
    return ConnectionReport(
        ok=True,
        message=f"logged in to {endpoint.describe()} as {spec.username}; {summary}",
        folders=counts,
        server_folders=server_folders,
        log=lines,
        mailboxes=mailboxes,
    )
