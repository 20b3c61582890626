"""A retrieval account as the services see it (the password stays encrypted here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailhaul.domain.filtering import FilterOptions
from mailhaul.domain.options import (
    Protocol,
    RetrievalOptions,
    Security,
    SignInMethod,
    SourceEndpoint,
)


@dataclass(frozen=True)
class AccountSpec:
    """What a user sets for an account: source, options and destination."""

    owner: str
    protocol: Protocol
    host: str
    port: int
    security: Security
    username: str
    verify_cert: bool = True
    ca_file: str | None = None
    options: RetrievalOptions = field(default_factory=RetrievalOptions)
    deliver_to: str = ""
    interval: int = 300
    active: bool = True
    sign_in: SignInMethod = SignInMethod.PASSWORD
    oauth_provider_id: int | None = None  # with OAUTH2: the provider's row
    filters: FilterOptions = field(default_factory=FilterOptions)
    push: bool | None = None  # IMAP IDLE: on, off, or None for the setting push.enabled

    @property
    def destination(self) -> str:
        """The local address mail is delivered to (the owner unless set)."""
        return self.deliver_to or self.owner

    def pushes(self, default: bool) -> bool:
        """Whether new mail is pushed (IMAP IDLE) to this account; ``default`` is the
        setting push.enabled, for an account that does not say."""
        if self.protocol is not Protocol.IMAP:
            return False
        return default if self.push is None else self.push

    def endpoint(self, timeout: float) -> SourceEndpoint:
        """The connection parameters of this source."""
        return SourceEndpoint(
            protocol=self.protocol,
            host=self.host,
            port=self.port,
            security=self.security,
            verify_cert=self.verify_cert,
            ca_file=self.ca_file,
            timeout=timeout,
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values (there is no password in a spec)."""
        return {
            "owner": self.owner,
            "protocol": str(self.protocol),
            "host": self.host,
            "port": self.port,
            "security": str(self.security),
            "verify_cert": self.verify_cert,
            "ca_file": self.ca_file,
            "username": self.username,
            "folders": list(self.options.folders),
            "folder_rules": self.options.rules.as_dict(),
            "delete_after_days": self.options.delete_after_days,
            "max_messages_per_run": self.options.max_messages_per_run,
            "max_bytes_per_run": self.options.max_bytes_per_run,
            "move_to": self.options.move_to,
            "push_folders": list(self.options.push_folders),
            "new_only": self.options.new_only,
            "since": self.options.since.isoformat() if self.options.since else None,
            "keep": self.options.keep,
            "fetchall": self.options.fetchall,
            "flush": self.options.flush,
            "max_size": self.options.max_size,
            "deliver_to": self.deliver_to,
            "interval": self.interval,
            "active": self.active,
            "sign_in": str(self.sign_in),
            "oauth_provider_id": self.oauth_provider_id,
            "antispam": str(self.filters.antispam),
            "antivirus": str(self.filters.antivirus),
            "push": self.push,
        }


class Trigger(StrEnum):
    """Who asked for a run (recorded on it): a person through the web UI, the CLI or the
    API, an external cron through ``POST /poll``, the schedule, or a push (IMAP IDLE)."""

    WEB = "web"
    CLI = "cli"
    API = "api"
    CRON = "cron"
    SCHEDULE = "schedule"
    PUSH = "push"


@dataclass(frozen=True)
class Account:
    """A stored account with its id and service state."""

    id: int
    spec: AccountSpec
    state: str = "new"
    last_run_at: float | None = None
    last_result: str | None = None
    next_poll_at: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    paused_reason: str | None = None
    fetch_requested_at: float | None = None
    sign_in_problem: str | None = None  # OAuth2: why the user has to connect again
    damaged: str | None = None  # stored options that could not be read: its polls stop

    def endpoint(self, timeout: float) -> SourceEndpoint:
        """The connection parameters of this account's source."""
        return self.spec.endpoint(timeout)


def retargeted(before: AccountSpec, after: AccountSpec) -> list[str]:
    """What in ``after`` would send ``before``'s stored password where it was not entered for.

    Another server (protocol, host, port), a weaker channel to it (security ``none``,
    certificate checks off) or another CA file (which could vouch for anyone's server). A
    new username goes to the same server, so it does not count.
    """
    changed = []
    if after.protocol is not before.protocol:
        changed.append("protocol")
    if after.host.lower() != before.host.lower():
        changed.append("host")
    if after.port != before.port:
        changed.append("port")
    if after.security is Security.NONE and before.security is not Security.NONE:
        changed.append("security")
    if before.verify_cert and not after.verify_cert:
        changed.append("verify_cert")
    if after.ca_file != before.ca_file:
        changed.append("ca_file")
    return changed
