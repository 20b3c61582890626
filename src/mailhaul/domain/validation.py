"""Checks on an account's settings, each failure naming the field."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager

from mailhaul.domain.account import AccountSpec, retargeted
from mailhaul.domain.addresses import normalise_address
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.folders import checked_rules
from mailhaul.domain.options import Protocol, RetrievalOptions, SignInMethod

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELD_PREFIX = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)
MIN_INTERVAL = 10
MIN_MAX_SIZE = 1
MAX_MAX_SIZE = 2**40  # 1 TiB: "no limit" in practice (there is no 0 for "unlimited")


class FieldError(ConfigError):
    """Raised when one field of an account is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FieldErrors(FieldError):
    """Raised when several fields are invalid at once; ``errors`` maps each field to its
    message (the first is also ``field`` and ``message``)."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(field, message)
        self.errors = dict(errors)
        self.args = ("; ".join(f"{name}: {text}" for name, text in errors.items()),)


class FieldChecks:
    """Runs independent checks and keeps every field's first error, so a form can show
    them all in one round trip: ``with checks.field(): ...`` then ``checks.raise_any()``."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    @contextmanager
    def field(self) -> Iterator[None]:
        """Note a FieldError raised inside (all of a FieldErrors') and carry on."""
        try:
            yield
        except FieldErrors as exc:
            for name, message in exc.errors.items():
                self.errors.setdefault(name, message)
        except FieldError as exc:
            self.errors.setdefault(exc.field, exc.message)
        except ConfigError as exc:  # worded "field: message" where it is about one field
            found = _FIELD_PREFIX.match(str(exc))
            if found is None:
                raise
            self.errors.setdefault(found.group(1), found.group(2))

    def add(self, field: str, message: str) -> None:
        """Note an error found without an exception."""
        self.errors.setdefault(field, message)

    def raise_any(self) -> None:
        """FieldError for one bad field, FieldErrors for several; nothing if all are good."""
        if len(self.errors) == 1:
            [(field, message)] = self.errors.items()
            raise FieldError(field, message)
        if self.errors:
            raise FieldErrors(self.errors)


def normalise_host(host: str) -> str:
    """A host name (IDNA, lower case) or an IP address; anything else is refused."""
    host = host.strip()
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        ascii_host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise FieldError("host", f"{host!r} is not a valid host name") from None
    labels = ascii_host.split(".")
    if not ascii_host or len(ascii_host) > 253 or not all(_HOST_LABEL.match(x) for x in labels):
        raise FieldError("host", f"{host!r} is not a valid host name")
    return ascii_host


def check_text(field: str, value: str, max_length: int = 320) -> None:
    """Refuse empty values, control characters (CR, LF, NUL…) and over-long text."""
    if not value:
        raise FieldError(field, "must not be empty")
    if len(value) > max_length:
        raise FieldError(field, f"is longer than {max_length} characters")
    if _CONTROL.search(value):
        raise FieldError(field, "must not contain control characters (line breaks, NUL…)")


def check_password(password: str) -> None:
    """A password must be non-empty and free of CR, LF and NUL (no protocol carries them)."""
    if not password:
        raise FieldError("password", "must not be empty")
    if any(ch in password for ch in "\r\n\x00"):
        raise FieldError("password", "must not contain line breaks or NUL")
    if len(password) > 1024:
        raise FieldError("password", "is longer than 1024 characters")


def check_port(port: int) -> None:
    """A TCP port: 1 to 65535 (0 is not "the default port": leave the port out for that)."""
    if not 1 <= port <= 65535:
        raise FieldError("port", f"{port} is not a TCP port (1-65535)")


_SIZE = re.compile(r"^(\d{1,15})\s*(?:([kmg])(?:i?b)?|b)?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(raw: str) -> int:
    """``100M``, ``512K``, ``1G`` or bytes (the web form and the CLI alike); FieldError
    ("max_size") otherwise, or outside 1 byte to 1 TiB."""
    match = _SIZE.match(raw.strip())
    if not match:
        raise FieldError("max_size", "must be a number of bytes, or like 100M, 512K, 1G")
    value = int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    check_max_size(value)
    return value


def check_max_size(max_size: int) -> None:
    """A per-message size limit in bytes: 1 byte to 1 TiB.

    0 is refused rather than read as "no limit" (fetchmail's ``limit 0``): the limit is
    there so that one huge message cannot fill the disk; 1 TiB is the way to say "any".
    """
    if not MIN_MAX_SIZE <= max_size <= MAX_MAX_SIZE:
        raise FieldError(
            "max_size",
            f"{max_size} is not a size limit: from {MIN_MAX_SIZE} byte to 1 TiB "
            f'({MAX_MAX_SIZE} bytes); there is no 0 for "no limit"',
        )


def check_interval(interval: int) -> None:
    """Seconds between polls: at least MIN_INTERVAL."""
    if interval < MIN_INTERVAL:
        raise FieldError("interval", f"must be at least {MIN_INTERVAL} seconds")


def validated_spec(spec: AccountSpec) -> AccountSpec:
    """The spec with host and addresses normalised, or an error naming what is wrong: a
    FieldError for one field, FieldErrors for several (every bad field is reported)."""
    from dataclasses import replace

    checks = FieldChecks()
    owner, deliver_to, host = spec.owner, "", spec.host
    try:
        owner = normalise_address(spec.owner)
    except ConfigError as exc:
        checks.add("owner", str(exc))
    if spec.deliver_to:
        try:
            deliver_to = normalise_address(spec.deliver_to)
        except ConfigError as exc:
            checks.add("deliver_to", str(exc))
    with checks.field():
        host = normalise_host(spec.host)
    with checks.field():
        check_port(spec.port)
    with checks.field():
        check_max_size(spec.options.max_size)
    with checks.field():
        check_text("username", spec.username)
    with checks.field():
        _check_folders(spec)
    rules = spec.options.rules
    with checks.field():
        rules = checked_rules(spec.options.rules)
    _check_limits(spec.options, checks)
    with checks.field():
        check_interval(spec.interval)
    if spec.push and spec.protocol is not Protocol.IMAP:
        checks.add("push", "push needs IMAP (IDLE); a POP3 account is polled")
    if spec.ca_file is not None:
        with checks.field():
            check_text("ca_file", spec.ca_file, 4096)
    checks.raise_any()
    provider = spec.oauth_provider_id if spec.sign_in is SignInMethod.OAUTH2 else None
    options = replace(spec.options, rules=rules)
    return replace(
        spec,
        owner=owner,
        deliver_to=deliver_to,
        host=host,
        oauth_provider_id=provider,
        options=options,
    )


MAX_KEEP_DAYS = 3650
EARLIEST_SINCE, LATEST_SINCE = 1970, 9999
MAX_RUN_MESSAGES = 1_000_000
MIN_RUN_BYTES = 1024


def _check_limits(options: RetrievalOptions, checks: FieldChecks) -> None:
    """``delete_after_days`` (with keep) and the per-run limits, each in its range."""
    days = options.delete_after_days
    if days is not None:
        if not 1 <= days <= MAX_KEEP_DAYS:
            checks.add("delete_after", f"must be a number of days from 1 to {MAX_KEEP_DAYS:,}")
        elif not options.keep:
            checks.add(
                "delete_after",
                "goes with keep: without it a message is deleted as soon as it is delivered",
            )
    count = options.max_messages_per_run
    if count is not None and not 1 <= count <= MAX_RUN_MESSAGES:
        checks.add("max_messages_per_run", f"must be from 1 to {MAX_RUN_MESSAGES:,} messages")
    size = options.max_bytes_per_run
    if size is not None and not MIN_RUN_BYTES <= size <= MAX_MAX_SIZE:
        checks.add("max_bytes_per_run", "must be from 1K to 1T")
    if options.move_to:
        with checks.field():
            check_text("move_to", options.move_to, 1000)
        if options.keep:
            checks.add("move_to", "moves mail instead of keeping it: leave out keep")
        elif options.move_to in options.folders:
            checks.add("move_to", "is one of the folders polled: moved mail would come back")
    if options.since is not None and not EARLIEST_SINCE <= options.since.year <= LATEST_SINCE:
        checks.add("since", f"must be a day from {EARLIEST_SINCE} to {LATEST_SINCE}")


def _check_folders(spec: AccountSpec) -> None:
    folders = spec.options.folders
    for folder in folders:
        check_text("folder", folder, 1000)
    if len(set(folders)) != len(folders):
        raise FieldError("folder", "the same folder is named twice")
    if spec.protocol is Protocol.POP3 and folders != ("INBOX",):
        raise FieldError("folder", "POP3 has only the INBOX; folders need IMAP")
    if spec.protocol is Protocol.POP3 and spec.options.move_to:
        raise FieldError("move_to", "POP3 has no folders to move mail into: it needs IMAP")
    if spec.protocol is Protocol.POP3 and spec.options.rules.all_folders:
        raise FieldError("all_folders", "POP3 has only the INBOX; every folder needs IMAP")
    _check_push_folders(spec)


MAX_PUSH_FOLDERS = 50


def _check_push_folders(spec: AccountSpec) -> None:
    """Push folders are polled folders (a watch on one that is not polled would ask for
    polls that fetch nothing), each named once, never the move_to folder."""
    options = spec.options
    names = options.push_folders
    if not names:
        return
    if spec.protocol is Protocol.POP3:
        raise FieldError("push_folders", "POP3 has no IDLE: push folders need IMAP")
    for name in names:
        check_text("push_folders", name, 1000)
    if len(names) > MAX_PUSH_FOLDERS:
        raise FieldError("push_folders", f"at most {MAX_PUSH_FOLDERS} folders")
    if len(set(names)) != len(names):
        raise FieldError("push_folders", "the same folder is named twice")
    if options.move_to and options.move_to in names:
        raise FieldError("push_folders", f"{options.move_to!r} is where mail is moved to")
    if not options.rules.all_folders:
        polled = {name.upper() if name.upper() == "INBOX" else name for name in options.folders}
        missing = [n for n in names if (n.upper() if n.upper() == "INBOX" else n) not in polled]
        if missing:
            raise FieldError("push_folders", f"not among the folders polled: {', '.join(missing)}")


def password_needed(before: AccountSpec, after: AccountSpec) -> FieldError | None:
    """The error for an edit that re-targets the stored password without its being typed."""
    changed = retargeted(before, after)
    if not changed:
        return None
    return FieldError(
        "password",
        f"enter the password again to change the {', '.join(changed)}: the stored password "
        f"is only ever sent to the server it was entered for",
    )
