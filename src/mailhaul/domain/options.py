"""Account options: what to connect to and how to retrieve, as plain values."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import StrEnum

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.folders import FolderRules

DEFAULT_MAX_SIZE = 100 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0


class Protocol(StrEnum):
    """The retrieval protocol of a source account."""

    POP3 = "pop3"
    IMAP = "imap"


class Security(StrEnum):
    """How the connection is protected: implicit TLS, STARTTLS upgrade, or none."""

    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


def default_port(protocol: Protocol, security: Security) -> int:
    """The well-known port for a protocol and security mode (110/995, 143/993)."""
    if protocol is Protocol.POP3:
        return 995 if security is Security.SSL else 110
    return 993 if security is Security.SSL else 143


@dataclass(frozen=True)
class SourceEndpoint:
    """Where and how to connect to a source server."""

    protocol: Protocol
    host: str
    port: int
    security: Security = Security.SSL
    verify_cert: bool = True
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        """A short human description, e.g. ``pop3s://mail.example.net:995``."""
        scheme = f"{self.protocol}s" if self.security is Security.SSL else str(self.protocol)
        return f"{scheme}://{self.host}:{self.port}"


class SignInMethod(StrEnum):
    """How an account signs in to its server."""

    PASSWORD = "password"  # noqa: S105 (a name)
    OAUTH2 = "oauth2"


@dataclass(frozen=True)
class Credentials:
    """A username and a password, or with ``method`` OAUTH2 an access token in ``password``;
    the secret never appears in repr()."""

    username: str
    password: str = field(repr=False)
    method: SignInMethod = SignInMethod.PASSWORD

    @property
    def kind(self) -> str:
        """What the secret is, in words: ``password`` or ``access token``."""
        return "access token" if self.method is SignInMethod.OAUTH2 else "password"


@dataclass(frozen=True)
class RetrievalOptions:
    """fetchmail-style retrieval options for one account."""

    keep: bool = False
    fetchall: bool = False
    flush: bool = False
    max_size: int = DEFAULT_MAX_SIZE
    folders: tuple[str, ...] = ("INBOX",)
    rules: FolderRules = field(default_factory=FolderRules)
    """Every folder or the list above, and where each one's mail lands."""
    delete_after_days: int | None = None
    """With ``keep``: delete a message on the source this many days after its delivery."""
    max_messages_per_run: int | None = None
    """End a run cleanly after this many messages (the rest next run, due at once)."""
    max_bytes_per_run: int | None = None
    """End a run cleanly once this many bytes are fetched (one message always fits)."""
    move_to: str = ""
    """IMAP: after delivery move each message to this folder (made if missing) instead of
    deleting it."""
    new_only: bool = False
    """First sync: what a folder holds when it is first listed is left alone."""
    since: datetime.date | None = None
    """First sync: only messages dated on or after this day (IMAP internal date, POP3
    ``Date:``); older ones are left alone."""
    push_folders: tuple[str, ...] = ()
    """IMAP push on a server without NOTIFY: the folders watched with IDLE, one connection
    each within the connection cap (empty: the INBOX only; with NOTIFY one connection
    watches every polled folder and this list is not needed)."""

    def __post_init__(self) -> None:
        if self.max_size <= 0:
            raise ConfigError("max size must be a positive number of bytes")
        if not self.folders:
            raise ConfigError("at least one folder is needed")
