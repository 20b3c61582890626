"""Domain errors, raised by adapters (which translate library errors) and services.

MailhaulError
├── ConfigError              bad settings, options or command-line input; fix and retry
├── SourceError              the remote POP3/IMAP side failed
│   ├── TransientSourceError network drop, timeout, server busy: retry next run
│   │   └── ServerStalled    endless, dripping or useless replies held a command or the run
│   ├── ProtocolViolation    the server sent something that breaks the protocol
│   ├── AuthenticationFailed the server rejected the credentials
│   ├── TlsFailure           certificate rejected, STARTTLS not offered, handshake failed
│   └── UnsupportedByServer  the server lacks a capability the options need (e.g. UIDL)
├── DeliveryError            the local side failed
│   ├── TemporaryDeliveryError  disk full, backend down: message stays, run stops
│   ├── PermanentDeliveryError  the backend refused this message for good
│   └── DestinationMissing      the backend says the destination mailbox does not exist
└── AccountBusy              another run holds this account's lease
"""

from __future__ import annotations


class MailhaulError(Exception):
    """Base of every error mailhaul raises on purpose."""


class ConfigError(MailhaulError):
    """Raised when settings, account options or command-line input are invalid."""


class NotFound(MailhaulError):
    """Raised when an account (or other record) does not exist."""


class SourceError(MailhaulError):
    """Raised when talking to the remote POP3/IMAP server fails."""


class TransientSourceError(SourceError):
    """Raised on network drops, timeouts and temporary server errors; the next run retries."""


class ServerStalled(TransientSourceError):
    """Raised when a server holds a command or a run past its bounds (endless, dripping or
    useless replies, a listing too large); the next run retries."""


class ProtocolViolation(SourceError):
    """Raised when the server's reply breaks the protocol (hostile or broken server)."""


class AuthenticationFailed(SourceError):
    """Raised when the server rejects the username or password."""


class TlsFailure(SourceError):
    """Raised when TLS cannot be established safely (bad certificate, no STARTTLS offered)."""


class UnsupportedByServer(SourceError):
    """Raised when the server lacks a capability the account's options require."""


class DeliveryError(MailhaulError):
    """Raised when a message cannot be delivered locally."""


class TemporaryDeliveryError(DeliveryError):
    """Raised when delivery failed for now (disk full, backend down); the message stays."""


class PermanentDeliveryError(DeliveryError):
    """Raised when the local backend refused this message for good."""


class StorageError(MailhaulError):
    """Raised when the database cannot be read or written (full, locked, unreachable)."""


class DestinationMissing(DeliveryError):
    """Raised when the backend says the destination mailbox does not exist."""


class AccountBusy(MailhaulError):
    """Raised when another run already holds the account's lease."""


def error_kind(exc: BaseException) -> str:
    """The metrics ``kind`` of an exception a poll failed with."""
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (AuthenticationFailed, "auth"),
        (TlsFailure, "tls"),
        (TransientSourceError, "network"),
        (SourceError, "protocol"),  # ProtocolViolation, UnsupportedByServer, the rest
        (DestinationMissing, "destination_missing"),
        (DeliveryError, "delivery"),
        (StorageError, "storage"),
        (ConfigError, "config"),
        (NotFound, "config"),
    )
    for cls, kind in kinds:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, OSError) and not isinstance(exc, MailhaulError):
        return "network" if isinstance(exc, ConnectionError | TimeoutError) else "internal"
    return "internal"
