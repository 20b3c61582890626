"""The API's account bodies: an account's settings in (create, replace, patch), and out
with its service state, runs, refusals and connection tests. Shapes and sizes are bounded
here (the shared field types are in ``schemas``); the services check meaning.
"""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from mailhaul.domain.folders import FolderRules as DomainFolderRules
from mailhaul.domain.options import Protocol, Security
from mailhaul.web.api.v1.schemas import (
    Address,
    AntiSpam,
    AntiVirus,
    CaFile,
    Folders,
    HostName,
    Interval,
    MaxSize,
    OptionalAddress,
    Port,
    SourcePassword,
    Uid,
    Username,
    _Input,
)

# --- accounts: input --------------------------------------------------------------------------
Pattern = Annotated[str, StringConstraints(min_length=1, max_length=200)]
KeepDays = Annotated[int, Field(ge=1, le=3650)]
RunMessages = Annotated[int, Field(ge=1, le=1_000_000)]
RunBytes = Annotated[int, Field(ge=1024, le=2**40)]
PushFolder = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class FolderRules(_Input):
    """IMAP: which folders are polled and which local folder each one's mail lands in (as
    `mailhaul account add --all-folders --include --exclude --map --into`)."""

    all_folders: bool = Field(
        default=False,
        description="Poll every folder but Trash, Junk, Drafts and All Mail (unless included).",
    )
    include: list[Pattern] = Field(default_factory=list, max_length=50)
    exclude: list[Pattern] = Field(default_factory=list, max_length=50)
    map: list[tuple[Pattern, Annotated[str, StringConstraints(max_length=200)]]] = Field(
        default_factory=list,
        max_length=100,
        description="[remote, local] pairs; local '' is the mailbox itself.",
        examples=[[["[Gmail]/Spam", "Junk"]]],
    )
    into: str = Field(default="", max_length=200, description="Local folder for the rest.")
    special_use_map: bool = Field(
        default=True, description="Junk, Sent, Archive (special use) into those local folders."
    )

    def domain(self) -> DomainFolderRules:
        """As the domain's rules."""
        return DomainFolderRules(
            self.all_folders,
            tuple(self.include),
            tuple(self.exclude),
            tuple((remote, local) for remote, local in self.map),
            self.into,
            self.special_use_map,
        )


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
    push: bool | None = Field(
        default=None,
        description="IMAP: new mail within seconds through IDLE while the service runs; "
        "null: the setting push.enabled.",
    )
    folder_rules: FolderRules = Field(default_factory=FolderRules)
    delete_after_days: KeepDays | None = Field(
        default=None, description="With keep: delete on the server this many days after delivery."
    )
    max_messages_per_run: RunMessages | None = Field(
        default=None, description="A run stops after this many (the rest next run, at once)."
    )
    max_bytes_per_run: RunBytes | None = Field(
        default=None, description="A run stops once this many bytes are fetched."
    )
    move_to: str = Field(
        default="", max_length=1000, description="IMAP: move delivered mail to this folder."
    )
    new_only: bool = Field(default=False, description="First sync: only mail from now on.")
    since: datetime.date | None = Field(
        default=None, description="First sync: only mail dated on or after this day."
    )
    push_folders: list[PushFolder] = Field(
        default_factory=list,
        max_length=50,
        description="IMAP push on a server without NOTIFY: polled folders watched with IDLE, "
        "one connection each within the connection cap (empty: the INBOX only). A server "
        "with NOTIFY watches every polled folder on one connection: not needed there.",
    )


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

    An omitted or empty password keeps the stored one; ``ca_file: null`` removes the CA file,
    ``push: null`` makes the account follow the setting push.enabled again.
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
    push: bool | None = Field(default=None, description="IMAP IDLE; null: push.enabled.")
    folder_rules: FolderRules | None = Field(default=None, description="Replaces the rules.")
    delete_after_days: KeepDays | None = Field(default=None, description="null: never.")
    max_messages_per_run: RunMessages | None = Field(default=None, description="null: no limit.")
    max_bytes_per_run: RunBytes | None = Field(default=None, description="null: no limit.")
    move_to: str | None = Field(default=None, max_length=1000, description="'': delete.")
    new_only: bool | None = None
    since: datetime.date | None = Field(default=None, description="null: all mail.")
    push_folders: list[PushFolder] | None = Field(
        default=None, max_length=50, description="Replaces the list; []: the INBOX only."
    )
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
    DAILY_LIMIT = "daily limit"  # the source host's daily download budget is spent
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
    limit_resumes_at: float | None = Field(
        default=None,
        description="State daily limit: the source host's daily download budget "
        "(limits.daily_bytes_per_host) is spent until then; the account fetches again by itself.",
    )


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
    push: bool | None = Field(default=None, description="IMAP IDLE; null: push.enabled.")
    push_state: PushState | None = Field(default=None, description="Push now (IMAP IDLE).")
    folder_rules: FolderRules = Field(default_factory=FolderRules)
    delete_after_days: int | None = None
    max_messages_per_run: int | None = None
    max_bytes_per_run: int | None = None
    move_to: str = ""
    new_only: bool = False
    since: datetime.date | None = None
    push_folders: list[str] = Field(default_factory=list)


class PushState(BaseModel):
    """Whether new mail is pushed now (IMAP IDLE), as the watching process reported it."""

    state: str = Field(
        description="off, capped (the connection cap leaves no room for a watch: polled "
        "only), idle (no service watches), connecting, watching, reconnecting, "
        "unsupported (the server has no IDLE: polled only) or waiting (a poll must sign in)"
    )
    since: float | None = None
    reason: str = ""
    events: int = Field(default=0, description="Changes IDLE reported to this watcher.")
    text: str = Field(description="The state in words, as the account page says it.")


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


class ConnectionReport(BaseModel):
    """A connection test: logged in or not, in the server's own words; nothing fetched."""

    ok: bool
    message: str
    error_kind: str | None = Field(description="auth, tls, network, protocol … on failure")
    folders: dict[str, int] = Field(description="Each configured folder: messages in it.")
    server_folders: list[str] = Field(description="IMAP: every folder the server has.")
    log: list[str]
