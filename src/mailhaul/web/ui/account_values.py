"""The account form's values and the account they describe (pure: no request, no I/O).

An empty port takes the protocol's and security's default; an empty interval or size the
settings' default. Sizes may be written ``100M``/``512K``/``1G`` or in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from starlette.datastructures import FormData

from mailhaul.domain.access import Principal, Role
from mailhaul.domain.account import AccountSpec
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import FilterOptions, spam_action, virus_action
from mailhaul.domain.options import (
    Protocol,
    RetrievalOptions,
    Security,
    SignInMethod,
    default_port,
)
from mailhaul.domain.validation import FieldChecks, FieldError, parse_size, validated_spec
from mailhaul.settings import Settings
from mailhaul.web.ui.folder_values import FIELDS as FOLDER_FIELDS
from mailhaul.web.ui.folder_values import LABELS as FOLDER_LABELS
from mailhaul.web.ui.folder_values import (
    FolderFormValues,
    extras_of,
    folder_values_of_form,
    folder_values_of_options,
    rules_of,
)
from mailhaul.web.ui.templating import checked, text

FIELDS = (
    "owner",
    "protocol",
    "host",
    "port",
    "security",
    "verify_cert",
    "ca_file",
    "username",
    "password",
    "folders",
    "keep",
    "fetchall",
    "flush",
    "deliver_to",
    "interval",
    "max_size",
    "active",
    "sign_in",
    "antispam",
    "antivirus",
    "push",
    *FOLDER_FIELDS,
)
# The services name the folder list "folder"; the form's field is "folders".
FIELD_ALIASES = {"folder": "folders", "oauth_provider": "sign_in"}
MAX_INTERVAL = 31 * 86400
DEFAULT_PORTS = {
    f"{protocol}/{security}": default_port(protocol, security)
    for protocol in Protocol
    for security in Security
}
LABELS = {
    "owner": "Owner",
    "protocol": "Protocol",
    "host": "Host",
    "port": "Port",
    "security": "Security",
    "verify_cert": "Verify the certificate",
    "ca_file": "CA file",
    "username": "Username",
    "password": "Password",
    "folders": "Folders",
    "deliver_to": "Deliver to",
    "interval": "Poll every",
    "max_size": "Max message size",
    "sign_in": "Sign-in method",
    "antispam": "Spam check",
    "antivirus": "Virus check",
    "push": "Push",
    **FOLDER_LABELS,
}
ANTISPAM_CHOICES = [
    ("off", "Off"),
    ("tag", "Tag spam (X-Spam-* headers)"),
    ("junk", "Tag spam and file it into Junk"),
]
ANTIVIRUS_CHOICES = [("off", "Off"), ("quarantine", "Quarantine infected mail")]
PROTOCOLS = [(str(Protocol.POP3), "POP3"), (str(Protocol.IMAP), "IMAP")]
SECURITIES = [
    (str(Security.SSL), "SSL/TLS (implicit TLS)"),
    (str(Security.STARTTLS), "STARTTLS (upgrade a plain connection)"),
    (str(Security.NONE), "None (password sent in clear)"),
]


@dataclass(frozen=True)
class FormValues:
    """What the form shows (text as typed); there is no password among them."""

    owner: str = ""
    protocol: str = str(Protocol.IMAP)
    host: str = ""
    port: str = ""
    security: str = str(Security.SSL)
    verify_cert: bool = True
    ca_file: str = ""
    username: str = ""
    folders: str = "INBOX"
    keep: bool = False
    fetchall: bool = False
    flush: bool = False
    deliver_to: str = ""
    interval: str = ""
    max_size: str = ""
    active: bool = True
    sign_in: str = ""  # "password", "oauth2:<provider id>"; "" keeps what is stored
    antispam: str = ""  # "" takes filter.antispam (a new account) or keeps what is stored
    antivirus: str = ""
    push: bool | None = None  # None: not chosen yet (the form shows push.enabled)
    folder_rules: FolderFormValues = field(default_factory=FolderFormValues)


def sign_in_value(spec: AccountSpec) -> str:
    """How the form names a spec's sign-in method."""
    if spec.sign_in is SignInMethod.OAUTH2 and spec.oauth_provider_id is not None:
        return f"oauth2:{spec.oauth_provider_id}"
    return "password"


def show_size(value: int) -> str:
    """A size as the form shows it: ``100M``, ``512K`` or bytes."""
    for suffix, unit in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def values_of_spec(spec: AccountSpec) -> FormValues:
    """The form filled from a stored account."""
    return FormValues(
        owner=spec.owner,
        protocol=str(spec.protocol),
        host=spec.host,
        port=str(spec.port),
        security=str(spec.security),
        verify_cert=spec.verify_cert,
        ca_file=spec.ca_file or "",
        username=spec.username,
        folders="\n".join(spec.options.folders),
        keep=spec.options.keep,
        fetchall=spec.options.fetchall,
        flush=spec.options.flush,
        deliver_to=spec.deliver_to,
        interval=str(spec.interval),
        max_size=show_size(spec.options.max_size),
        active=spec.active,
        sign_in=sign_in_value(spec),
        antispam=str(spec.filters.antispam),
        antivirus=str(spec.filters.antivirus),
        push=spec.push,
        folder_rules=folder_values_of_options(spec.options),
    )


def folder_lines(text: str) -> list[str]:
    """The Folders field as a list: one folder a line, blank lines dropped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _with_choices(text: str, chosen: list[str]) -> str:
    """The Folders field with the server's folders ticked after a Test connection added
    (those not in it yet, in the server's order)."""
    have = folder_lines(text)
    extra = [name for name in chosen if name.strip() and name not in have]
    return "\n".join([*have, *extra]) if extra else text


def values_of_form(form: FormData) -> FormValues:
    """The form as submitted (folders ticked among the server's added to Folders)."""
    return FormValues(
        owner=text(form, "owner"),
        protocol=text(form, "protocol"),
        host=text(form, "host"),
        port=text(form, "port"),
        security=text(form, "security"),
        verify_cert=checked(form, "verify_cert"),
        ca_file=text(form, "ca_file"),
        username=text(form, "username"),
        folders=_with_choices(
            text(form, "folders"), [str(v)[:1000] for v in form.getlist("folder_choice")[:200]]
        ),
        keep=checked(form, "keep"),
        fetchall=checked(form, "fetchall"),
        flush=checked(form, "flush"),
        deliver_to=text(form, "deliver_to"),
        interval=text(form, "interval"),
        max_size=text(form, "max_size"),
        active=checked(form, "active"),
        sign_in=text(form, "sign_in"),
        antispam=text(form, "antispam"),
        antivirus=text(form, "antivirus"),
        push=checked(form, "push"),
        folder_rules=folder_values_of_form(form),
    )


def _whole(field: str, raw: str, low: int, high: int, what: str) -> int:
    if not raw.isdigit() or len(raw) > 15 or not low <= int(raw) <= high:
        raise FieldError(field, f"must be {what} from {low:,} to {high:,}")
    return int(raw)


def _filters(
    values: FormValues, settings: Settings, previous: AccountSpec | None, checks: FieldChecks
) -> FilterOptions:
    """The checks the form asks for: as chosen, else as stored, else the server's default."""
    if previous is not None:
        spam, virus = str(previous.filters.antispam), str(previous.filters.antivirus)
    else:
        spam, virus = settings.filters.antispam, settings.filters.antivirus
    options = FilterOptions()
    with checks.field():
        try:
            options = replace(options, antispam=spam_action(values.antispam or spam))
        except ConfigError:
            raise FieldError("antispam", "choose off, tag or junk") from None
    with checks.field():
        try:
            options = replace(options, antivirus=virus_action(values.antivirus or virus))
        except ConfigError:
            raise FieldError("antivirus", "choose off or quarantine") from None
    return options


def _push(values: FormValues, protocol: Protocol, settings: Settings) -> bool | None:
    """The push choice to store: None (follow push.enabled) when the box says what the
    setting says, or for POP3 (which has no IDLE, whatever the box says)."""
    if protocol is not Protocol.IMAP or values.push is None:
        return None
    return None if values.push == settings.push_enabled else values.push


def spec_of(
    values: FormValues, actor: Principal, settings: Settings, previous: AccountSpec | None
) -> AccountSpec:
    """The account the form describes; FieldError naming the bad field, or FieldErrors
    naming every one (a field that cannot be read is checked no further; the others are
    checked as the services will).

    A user's owner is their own address and the destination is the owner; a non-admin's
    CA file is the stored one (only admins set one).
    """
    checks = FieldChecks()
    protocol, security = Protocol.IMAP, Security.SSL
    try:
        protocol = Protocol(values.protocol)
    except ValueError:
        checks.add("protocol", "choose POP3 or IMAP")
    try:
        security = Security(values.security)
    except ValueError:
        checks.add("security", "choose SSL/TLS, STARTTLS or none")
    if not values.host:
        checks.add("host", "must not be empty")
    port = default_port(protocol, security)
    if values.port:
        with checks.field():
            port = _whole("port", values.port, 1, 65535, "a TCP port")
    folders: tuple[str, ...] = ("INBOX",)
    if protocol is Protocol.IMAP:
        folders = tuple(folder_lines(values.folders)) or ("INBOX",)
        if len(folders) > 100:
            checks.add("folders", "at most 100 folders")
            folders = folders[:100]
    interval = settings.interval
    if values.interval:
        with checks.field():
            interval = _whole("interval", values.interval, 10, MAX_INTERVAL, "a number of seconds")
    max_size = settings.max_size
    if values.max_size:
        with checks.field():
            max_size = parse_size(values.max_size)
    owner, deliver_to = values.owner, values.deliver_to
    if actor.role is Role.USER:
        owner, deliver_to = actor.login, ""
    if not owner:
        checks.add("owner", "must not be empty: the local address the account belongs to")
    ca_file = values.ca_file or None
    if not actor.is_admin:
        ca_file = previous.ca_file if previous is not None else None
    extras = extras_of(values.folder_rules, checks)
    spec = AccountSpec(
        owner=owner,
        protocol=protocol,
        host=values.host,
        port=port,
        security=security,
        username=values.username,
        verify_cert=values.verify_cert,
        ca_file=ca_file,
        options=RetrievalOptions(
            keep=values.keep,
            fetchall=values.fetchall,
            flush=values.flush,
            max_size=max_size,
            folders=folders,
            rules=rules_of(values.folder_rules, checks),
            delete_after_days=extras.delete_after_days,
            max_messages_per_run=extras.max_messages_per_run,
            max_bytes_per_run=extras.max_bytes_per_run,
            new_only=extras.new_only,
            since=extras.since,
            move_to=extras.move_to,
            push_folders=extras.push_folders,
        ),
        deliver_to=deliver_to,
        interval=interval,
        active=values.active,
        filters=_filters(values, settings, previous, checks),
        push=_push(values, protocol, settings),
    )
    chosen = values.sign_in or (sign_in_value(previous) if previous else "password")
    if chosen.startswith("oauth2:") and chosen[7:].isdigit():
        spec = replace(spec, sign_in=SignInMethod.OAUTH2, oauth_provider_id=int(chosen[7:]))
    elif chosen != "password":
        checks.add("sign_in", "choose a password or one of the OAuth2 providers")
    with checks.field():
        validated_spec(spec)  # the rest, in this round trip (the services check it again)
    checks.raise_any()
    return spec
