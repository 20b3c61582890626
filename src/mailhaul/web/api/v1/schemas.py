"""The API's request and response bodies: bounded, typed, and never holding a password.

Request models forbid unknown fields (a misspelt ``pasword`` is a 422, not silently
ignored). The services validate meaning (addresses, host names, scopes); these models bound
shapes and sizes so nothing oversized or mistyped reaches them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mailhaul.domain.access import Role
from mailhaul.domain.filtering import SpamAction, VirusAction

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


# --- the service ----------------------------------------------------------------------------
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
