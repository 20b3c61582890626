"""Domain errors, raised by adapters (which translate library errors) and services.

MailhaulError
├── ConfigError              bad settings, options or command-line input; fix and retry
├── SourceError              the remote POP3/IMAP side failed
│   ├── TransientSourceError network drop, timeout, server busy: retry next run
│   │   ├── ServerStalled    endless, dripping or useless replies held a command or the run
│   │   ├── SessionRefused   the server turned the session away at its greeting (busy, full)
│   │   └── LoginDeferred    the server refused the login for now (in use, unavailable)
│   ├── ProtocolViolation    the server sent something that breaks the protocol
│   │   └── MessageMismatch  what it sent for one message is not that message (size, UID,
│   │                        a stand-in): that message stays on the server, the run goes on
│   ├── AuthenticationFailed the server rejected the credentials
│   │   └── TokenRejected    … an OAuth2 access token (refreshed once, then a failure)
│   ├── TlsFailure           certificate rejected, STARTTLS not offered, handshake failed
│   └── UnsupportedByServer  the server lacks a capability the options need (e.g. UIDL)
├── DeliveryError            the local side failed
│   ├── TemporaryDeliveryError  disk full, backend down: message stays, run stops
│   │   └── ScannerUnavailable  a spam or virus scanner is down, slow or talks garbage
│   ├── PermanentDeliveryError  the backend refused this message for good
│   └── DestinationMissing      the backend says the destination mailbox does not exist
├── ScanSkipped              a scanner declines one message (too large for it): unscanned
├── OAuthError               the OAuth2 authorization server's side of a sign-in failed
│   ├── SignInNeeded         the grant is gone (revoked, expired): the user connects again
│   └── TokenEndpointDown    the token endpoint is unreachable or failing: retry later
├── NotFound                 no such account (or other record)
├── StorageError             the database cannot be read or written
│   └── DatabaseUnusable     not a database, damaged, or read-only: fix it and retry
└── AccountBusy              another run holds this account's lease
"""

from __future__ import annotations

from enum import StrEnum


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


class SessionRefused(TransientSourceError):
    """Raised when the server turns the session away in its greeting (POP3 ``-ERR``, IMAP
    ``BYE``); the next run retries."""


class LoginDeferred(TransientSourceError):
    """Raised when the server refuses the login for now (a response code such as
    ``IN-USE``, ``LOGIN-DELAY`` or ``UNAVAILABLE``), not for a wrong password."""


class ProtocolViolation(SourceError):
    """Raised when the server's reply breaks the protocol (hostile or broken server)."""


class MessageMismatch(ProtocolViolation):
    """Raised when what the server sent for a message is not that message (its size or UID
    disagrees with the listing, or it is a stand-in); the session is still in step.

    ``final``: no second look can help (a body far longer than listed): refuse it at once.
    """

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class AuthenticationFailed(SourceError):
    """Raised when the server rejects the username or password."""


class TokenRejected(AuthenticationFailed):
    """Raised when the server refuses an OAuth2 access token (its error challenge, if any,
    is in the message: status and scope)."""


class TlsFailure(SourceError):
    """Raised when TLS cannot be established safely (bad certificate, no STARTTLS offered)."""


class UnsupportedByServer(SourceError):
    """Raised when the server lacks a capability the account's options require."""


class DeliveryError(MailhaulError):
    """Raised when a message cannot be delivered locally."""


class TemporaryDeliveryError(DeliveryError):
    """Raised when delivery failed for now (disk full, backend down); the message stays."""


class ScannerUnavailable(TemporaryDeliveryError):
    """Raised when a spam or virus scanner cannot judge a message (down, timed out, an
    answer that is not its protocol's); ``scanner`` names it (``rspamd``, ``spamd``,
    ``clamd``). With ``filter.on_scanner_failure = defer`` the run stops and the message
    stays on the server."""

    def __init__(self, scanner: str, message: str) -> None:
        super().__init__(f"{scanner}: {message}")
        self.scanner = scanner


class ScanSkipped(MailhaulError):
    """Raised when a scanner declines to judge one message (larger than it takes): the
    message is delivered unscanned, with a header saying why (not a scanner failure)."""

    def __init__(self, scanner: str, message: str) -> None:
        super().__init__(f"{scanner}: {message}")
        self.scanner = scanner


class PermanentDeliveryError(DeliveryError):
    """Raised when the local backend refused this message for good."""


class StorageError(MailhaulError):
    """Raised when the database cannot be read or written (full, locked, unreachable)."""


class DatabaseUnusable(StorageError):
    """Raised when the database is no database, is damaged or is read-only (no retry helps)."""


class DestinationMissing(DeliveryError):
    """Raised when the backend says the destination mailbox does not exist."""


class OAuthError(MailhaulError):
    """Raised when getting or refreshing an OAuth2 token fails."""


class SignInNeeded(OAuthError):
    """Raised when the authorization server refuses the grant for good (``invalid_grant``:
    revoked, password changed, expired): nothing is fetched until the user connects again."""


class TokenEndpointDown(OAuthError):
    """Raised when the token endpoint cannot be reached or answers with a server error; the
    next run retries."""


class AccountBusy(MailhaulError):
    """Raised when another run already holds the account's lease."""


class ErrorKind(StrEnum):
    """What kind of failure ended a poll (a metrics label, and the API's ``error_kind``)."""

    AUTH = "auth"
    SIGN_IN = "sign_in"
    TLS = "tls"
    NETWORK = "network"
    PROTOCOL = "protocol"
    DELIVERY = "delivery"
    SCANNER = "scanner"
    DESTINATION_MISSING = "destination_missing"
    CONFIG = "config"
    STORAGE = "storage"
    INTERNAL = "internal"


_KINDS: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    (AuthenticationFailed, ErrorKind.AUTH),
    (SignInNeeded, ErrorKind.SIGN_IN),
    (TokenEndpointDown, ErrorKind.NETWORK),
    (OAuthError, ErrorKind.CONFIG),  # the provider's registration: client id, secret, scope
    (TlsFailure, ErrorKind.TLS),
    (TransientSourceError, ErrorKind.NETWORK),
    (SourceError, ErrorKind.PROTOCOL),  # ProtocolViolation, UnsupportedByServer, the rest
    (DestinationMissing, ErrorKind.DESTINATION_MISSING),
    (ScannerUnavailable, ErrorKind.SCANNER),
    (DeliveryError, ErrorKind.DELIVERY),
    (StorageError, ErrorKind.STORAGE),
    (ConfigError, ErrorKind.CONFIG),
    (NotFound, ErrorKind.CONFIG),
)


def error_kind(exc: BaseException) -> ErrorKind:
    """The kind of failure an exception a poll failed with is."""
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, OSError) and not isinstance(exc, MailhaulError):
        return (
            ErrorKind.NETWORK
            if isinstance(exc, ConnectionError | TimeoutError)
            else ErrorKind.INTERNAL
        )
    return ErrorKind.INTERNAL
