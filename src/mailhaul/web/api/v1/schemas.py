"""The API's request and response bodies: bounded, typed, and never holding a password.

Request models forbid unknown fields (a misspelt ``pasword`` is a 422, not silently
ignored). The services validate meaning (addresses, host names, scopes); these models bound
shapes and sizes so nothing oversized or mistyped reaches them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mailhaul.domain.access import Role
from mailhaul.domain.filtering import SpamAction, VirusAction
from mailhaul.domain.options import Protocol, Security

MAX_ID = 2**31 - 1  # database ids are 32-bit integers
YEAR = 365 * 86400

Address = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254),
    Field(json_schema_extra={"format": "email"}),
]
OptionalAddress = Annotated[str, StringConstraints(max_length=254)]
HostName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Port = Annotated[int, Field(ge=1, le=65535)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=320)]
SourcePassword = Annotated[str, StringConstraints(max_length=1024)]
CaFile = Annotated[str, StringConstraints(max_length=4096)]
FolderName = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Folders = Annotated[list[FolderName], Field(min_length=1, max_length=100)]
Interval = Annotated[int, Field(ge=10, le=YEAR, description="Seconds between polls.")]
AntiSpam = Annotated[SpamAction | None, Field(description="off, tag or junk (default: setting)")]
AntiVirus = Annotated[VirusAction | None, Field(description="off or quarantine (default: setting)")]
MaxSize = Annotated[int, Field(ge=1, le=2**40, description="Largest message fetched, bytes.")]
DomainName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
UserPassword = Annotated[str, StringConstraints(min_length=10, max_length=1024)]
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# Free text that goes into a query: no control characters (PostgreSQL refuses NUL).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Uid = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message for people, the field at fault if any."""

    code: str = Field(examples=["validation_error"])
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error response of the API."""

    error: ErrorDetail


# --- accounts: input --------------------------------------------------------------------------
class AccountFields(_Input):
    """An account's settings (what `mailhaul account add` takes), without the password."""

    owner: Address | None = Field(
        default=None,
        description="Local address of the owner; default: the caller.",
        examples=["i.petrov@mydomain.example"],
    )
    protocol: Protocol = Protocol.POP3
    host: HostName = Field(
        description="The POP3/IMAP server: a host name (IDNA) or an IP address.",
        examples=["mail.example.net"],
    )
    port: Port | None = Field(
        default=None, description="Default: 110/995 (POP3), 143/993 (IMAP) by security."
    )
    security: Security = Security.SSL
    username: Username = Field(description="Login on the remote server.", examples=["petrov"])
    verify_cert: bool = True
    ca_file: CaFile | None = Field(default=None, description="A CA file on the server (admin).")
    folders: Folders = Field(default_factory=lambda: ["INBOX"])
    keep: bool = Field(default=False, description="Leave messages on the server.")
    fetchall: bool = Field(default=False, description="Also fetch messages already \\Seen.")
    flush: bool = Field(default=False, description="Delete old messages before fetching.")
    deliver_to: OptionalAddress = Field(default="", description="Default (''): the owner.")
    interval: Interval | None = Field(default=None, description="Default: poll.interval.")
    max_size: MaxSize | None = Field(default=None, description="Default: poll.max_size.")
    active: bool = True
    antispam: AntiSpam = None
    antivirus: AntiVirus = None


class AccountCreate(AccountFields):
    """A new account (or unsaved settings to test): its settings and password, or with
    ``sign_in`` ``oauth2`` its provider (it is connected after: ``POST …/connect``)."""

    password: SourcePassword | None = Field(
        default=None,
        description="Write-only: never returned. Required unless sign_in is oauth2.",
        examples=["source-password"],
    )
    sign_in: Literal["password", "oauth2"] = "password"
    oauth_provider: str | None = Field(
        default=None, max_length=64, description="With sign_in oauth2: the provider's name."
    )


class AccountReplace(AccountFields):
    """All of an account's settings: what is omitted takes a new account's default, except
    the owner and the password (omitted or empty), which stay as stored."""

    password: SourcePassword | None = Field(default=None, description="Write-only.")


class AccountPatch(_Input):
    """Some of an account's settings; what is omitted stays as it is.

    An omitted or empty password keeps the stored one; ``ca_file: null`` removes the CA file.
    """

    owner: Address | None = None
    protocol: Protocol | None = None
    host: HostName | None = None
    port: Port | None = None
    security: Security | None = None
    username: Username | None = None
    verify_cert: bool | None = None
    ca_file: CaFile | None = None
    folders: Folders | None = None
    keep: bool | None = None
    fetchall: bool | None = None
    flush: bool | None = None
    deliver_to: OptionalAddress | None = None
    interval: Interval | None = None
    max_size: MaxSize | None = None
    active: bool | None = None
    antispam: AntiSpam = None
    antivirus: AntiVirus = None
    password: SourcePassword | None = Field(default=None, description="Write-only.")


class RetryRequest(_Input):
    """Which refused message to try again (default: all of them)."""

    uid: Uid | None = None


# --- accounts: output -------------------------------------------------------------------------
class AccountState(StrEnum):
    """The state filter of the account list."""

    NEW = "new"
    OK = "ok"
    ERROR = "error"
    LOGIN_FAILED = "login failed"
    DESTINATION_MISSING = "destination missing"
    RUNNING = "running"
    PAUSED = "paused"
    INACTIVE = "inactive"


class Run(BaseModel):
    """One poll of an account."""

    id: int
    trigger: str
    started_at: float
    finished_at: float | None
    duration: float | None = Field(description="Seconds; null while running.")
    result: str = Field(description="running, ok, error or interrupted")
    fetched: int
    bytes: int
    deleted: int
    skipped: int
    spam: int = 0
    viruses: int = Field(default=0, description="Infected messages quarantined.")
    unscanned: int = Field(default=0, description="Messages delivered without a check.")
    error: str | None


class RunWithLog(Run):
    """One poll of an account, with its log."""

    log: str


class ServiceState(BaseModel):
    """An account's service state, as the list and the account both show it."""

    state: str = Field(description="running, paused, or the last run's outcome (new at first)")
    paused_reason: str | None
    sign_in_problem: str | None = Field(
        default=None, description="OAuth2: why the account must be connected (again)."
    )
    last_run_at: float | None
    last_result: str | None
    last_error: str | None
    next_poll_at: float | None
    fetch_requested_at: float | None
    consecutive_failures: int


class Account(ServiceState):
    """An account's settings and service state (never its password)."""

    id: int
    owner: str
    protocol: Protocol
    host: str
    port: int
    security: Security
    username: str
    verify_cert: bool
    ca_file: str | None
    folders: list[str]
    keep: bool
    fetchall: bool
    flush: bool
    max_size: int
    deliver_to: str = Field(description="'' when mail goes to the owner.")
    destination: str = Field(description="Where mail is delivered.")
    interval: int
    active: bool
    sign_in: str = Field(default="password", description="password or oauth2")
    oauth_provider_id: int | None = Field(default=None, description="With oauth2: its provider.")
    antispam: str = Field(default="off", description="off, tag or junk")
    antivirus: str = Field(default="off", description="off or quarantine")


class AccountSummary(ServiceState):
    """An account as the list shows it."""

    id: int
    owner: str
    protocol: str
    source: str = Field(examples=["pop3/ssl mail.example.net:995"])
    username: str
    destination: str
    active: bool
    last_run: Run | None


class AccountPage(BaseModel):
    """One page of the account list."""

    items: list[AccountSummary]
    total: int
    page: int
    per_page: int
    pages: int


class RunLog(BaseModel):
    """The log of an account's last finished run (null before its first run)."""

    account_id: int
    log: str | None


class RefusedMessage(BaseModel):
    """A message the local backend refused for good; it stays on the server."""

    folder: str
    uid: str
    note: str
    recorded_at: float


class RetryResult(BaseModel):
    """How many refusals were forgotten: the next run tries those messages again."""

    account_id: int
    cleared: int


class FetchQueued(BaseModel):
    """A "fetch now" request waiting for the scheduler."""

    account_id: int
    fetch_requested_at: float | None
    workers_alive: int = Field(description="Scheduler processes running; 0: nobody will poll.")


class PollQueued(BaseModel):
    """How many due accounts were put at the head of the scheduler's queue."""

    queued: int
    workers_alive: int


class WorkerInfo(BaseModel):
    """A `serve`/`worker` process and its heartbeat."""

    id: str
    hostname: str
    pid: int
    started_at: float
    heartbeat_age: float
    running: int
    stale: bool


class RecentError(BaseModel):
    """A run that failed, with its account."""

    account_id: int
    owner: str
    host: str
    started_at: float
    result: str
    error: str | None


class SystemStatus(BaseModel):
    """The service as a whole: what `mailhaul status` and the status page show."""

    generated_at: float
    accounts_total: int
    accounts_by_state: dict[str, int]
    running_polls: int
    queue_lag_seconds: float
    workers: list[WorkerInfo]
    recent_errors: list[RecentError]


class ConnectionReport(BaseModel):
    """A connection test: logged in or not, in the server's own words; nothing fetched."""

    ok: bool
    message: str
    error_kind: str | None = Field(description="auth, tls, network, protocol … on failure")
    folders: dict[str, int] = Field(description="Each configured folder: messages in it.")
    server_folders: list[str] = Field(description="IMAP: every folder the server has.")
    log: list[str]


# --- users and keys -------------------------------------------------------------------------
class User(BaseModel):
    """A user of the web UI and API (never the password hash)."""

    id: int
    login: str
    role: Role
    domains: list[str]
    active: bool
    created_at: float
    updated_at: float
    last_login_at: float | None
    notices: str = Field(default="mailbox", description="mailbox or off")


class UserCreate(_Input):
    """A new user."""

    login: Annotated[str, StringConstraints(min_length=1, max_length=254)] = Field(
        description="A mailbox address (an admin may have a plain name)."
    )
    role: Role = Role.USER
    domains: Annotated[list[DomainName], Field(max_length=100)] = Field(
        default_factory=list, description="A domain admin's domains."
    )
    password: UserPassword = Field(description="Write-only.")


class UserPatch(_Input):
    """Changes to a user; what is omitted stays."""

    role: Role | None = None
    domains: Annotated[list[DomainName], Field(max_length=100)] | None = None
    password: UserPassword | None = Field(default=None, description="Write-only.")
    active: bool | None = None


class ApiKey(BaseModel):
    """An API key, without its secret."""

    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    created_at: float
    last_used_at: float | None


class ApiKeyCreate(_Input):
    """A new key's name (what it is for)."""

    name: KeyName


class ApiKeyCreated(ApiKey):
    """A new key with its secret: shown only in this response."""

    key: str = Field(description="Send as `Authorization: Bearer <key>`. Shown only now.")
