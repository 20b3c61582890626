"""What every importer produces: accounts as read from a foreign file, and problems.

The parsers are pure: they take the text of a file (and its name, for messages) and return
`ParseResult`. A file that cannot be read at all raises `ImportFileError`; a malformed row
becomes an `ImportProblem` and the rest of the file is still imported.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import FilterOptions
from mailhaul.domain.folders import FolderRules
from mailhaul.domain.options import Protocol, Security


@dataclass(frozen=True)
class ImportProblem:
    """A row that could not be imported, with where it is and why."""

    file: str
    line: int
    message: str

    @property
    def source(self) -> str:
        """``file:line``."""
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class ImportFileError(ConfigError):
    """Raised when a whole file cannot be parsed (bad syntax): nothing of it is imported."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file = file
        self.line = line
        self.message = message


OAUTH2_NOTE = (
    "signs in with OAuth2: its token helper is not reused; the account waits in "
    '"sign-in needed" until it is connected (`mailhaul account connect ID`)'
)


@dataclass
class ImportedAccount:
    """One account as a foreign file describes it, before defaults and validation.

    ``owner``/``deliver_to`` are None when the file does not say (the importer's
    ``--owner``/``--deliver-to`` fill them in). ``notes`` tell what was mapped to a
    different meaning or could not be honoured; ``skip`` says why the account cannot be
    imported at all (e.g. a fetchmail multidrop mailbox).
    """

    file: str
    line: int
    protocol: Protocol
    host: str
    username: str
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    security: Security = Security.SSL
    verify_cert: bool = True
    ca_file: str | None = None
    keep: bool = False
    fetchall: bool = False
    flush: bool = False
    max_size: int | None = None
    folders: tuple[str, ...] = ("INBOX",)
    owner: str | None = None
    deliver_to: str | None = None
    local_name: str | None = None  # a local user name without @ (fetchmail's `is`)
    maildir: str | None = None  # a destination Maildir path (getmail)
    interval: int | None = None
    active: bool = True
    oauth2: bool = False  # signs in with OAuth2 (its token helper is not reused)
    oauth_provider: str | None = None  # the provider's name, where the file says it
    filters: FilterOptions | None = None  # spam/virus checks, where the file says (else default)
    push: bool | None = None  # IMAP IDLE, where the file says (else the setting push.enabled)
    rules: FolderRules | None = None  # folders and where they land (else each into the mailbox)
    delete_after_days: int | None = None  # with keep: delete N days after delivery
    max_messages_per_run: int | None = None  # getmail's max_messages_per_session, fetchlimit
    max_bytes_per_run: int | None = None  # getmail's max_bytes_per_session
    move_to: str = ""  # IMAP: move delivered mail there (getmail's move_on_delete)
    new_only: bool = False  # first sync: only mail from now on
    since: datetime.date | None = None  # first sync: only mail dated on or after
    push_folders: tuple[str, ...] = ()  # IMAP push without NOTIFY: IDLE on each
    notes: list[str] = field(default_factory=list)
    skip: str | None = None

    @property
    def source(self) -> str:
        """``file:line`` where the account is described."""
        return f"{self.file}:{self.line}"

    def note(self, line: int, message: str) -> None:
        """Add a note about one line of the file."""
        self.notes.append(f"{self.file}:{line}: {message}")


@dataclass
class ParseResult:
    """Accounts read from a file, and the rows that could not be read."""

    accounts: list[ImportedAccount] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    global_notes: list[str] = field(default_factory=list)


YES = frozenset({"y", "yes", "true", "on", "1"})
NO = frozenset({"n", "no", "false", "off", "0", ""})


def parse_flag(value: str) -> bool:
    """A y/n, yes/no, true/false, on/off or 1/0 value; ValueError otherwise."""
    folded = value.strip().lower()
    if folded in YES:
        return True
    if folded in NO:
        return False
    raise ValueError(f"{value!r} is not a yes/no value")


STARTTLS_NOTE = (
    "no `ssl`: fetchmail tries STARTTLS when offered; mailhaul requires it "
    "(set security none if the server has no STARTTLS)"
)
KEEP_FETCHALL_NOTE = (
    "keep + fetchall: fetchmail re-delivers every kept message on each poll; "
    "mailhaul fetches old messages too, but delivers each only once"
)
