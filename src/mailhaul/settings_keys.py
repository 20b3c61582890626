"""Every setting: its name, type and default, and how one value is checked (from a file,
the environment, a flag, or the database). The default ``mailhaul.toml`` is
``settings_toml``.

`mailhaul.settings` puts the layers together; this module knows single values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from mailhaul.delivery_methods import DELIVERY_METHODS, EDITABLE_METHODS
from mailhaul.domain.addresses import split_address
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.limits import DEFAULT_CONNECTIONS, DEFAULT_DAILY_BYTES

CONFIG_NAME = "mailhaul.toml"
DEFAULT_MAILDIR = "{home}/mail/{domain}/{local}"


@dataclass(frozen=True)
class DeliverySettings:
    """How mail for one domain (or the default) is delivered locally: the ``[delivery]`` keys,
    each field one key with its type and default."""

    method: str = "maildir"  # a name in delivery_methods.DELIVERY_METHODS
    maildir_path: str = DEFAULT_MAILDIR
    lmtp: str = ""
    smtp: str = ""
    smtp_starttls: bool = False
    smtp_ca_file: str = ""
    smtp_username: str = ""
    smtp_password_file: str = ""
    mda: str = ""
    timeout: float = 120.0
    sender: str = ""
    lmtp_folder_detail: str = ""  # "+": the LMTP server files local+Folder@domain in Folder

    def check(self, where: str) -> None:
        """Refuse an unknown method, or one without the settings it needs."""
        if self.lmtp_folder_detail not in ("", "+", "-", "_", "."):
            raise InvalidSetting(
                f"{where}.lmtp_folder_detail",
                f"{where}.lmtp_folder_detail must be the server's recipient delimiter "
                f'("+", "-", "_" or "."), or "" for none',
            )
        method = DELIVERY_METHODS.get(self.method)
        if method is None:
            raise InvalidSetting(
                f"{where}.method", f"{where}.method must be one of {', '.join(DELIVERY_METHODS)}"
            )
        for key in method.required:
            if not getattr(self, key):
                raise InvalidSetting(
                    f"{where}.{key}",
                    f"{where}.method is {self.method!r} but {where}.{key} is empty",
                )
        if self.timeout <= 0:
            raise InvalidSetting(f"{where}.timeout", f"{where}.timeout must be positive")

    @property
    def target(self) -> str:
        """Where mail goes, as people are shown it (the Maildir template, the LMTP server…)."""
        method = DELIVERY_METHODS.get(self.method)
        return str(getattr(self, method.target_key)) if method else ""

    @property
    def envelope_sender(self) -> str | None:
        """The fixed envelope sender: None takes it from the message, "" is the null sender
        (``sender = "<>"``)."""
        if not self.sender:
            return None
        return "" if self.sender == "<>" else self.sender


MAX_SCANNED = 50 * 1024 * 1024  # rspamd's default max_message


@dataclass(frozen=True)
class FilterSettings:
    """The scanners of the filter stage and how it behaves: the ``[filter]`` keys."""

    rspamd: str = ""  # http://127.0.0.1:11333 (its normal worker); wins over spamd
    spamd: str = ""  # host:port or a unix socket path
    clamd: str = ""  # host:port or a unix socket path
    on_scanner_failure: str = "defer"  # defer | deliver
    max_size: int = 20 * 1024 * 1024  # larger messages are delivered unscanned
    timeout: float = 30.0  # seconds for one scanner's answer
    antispam: str = "off"  # new accounts' default: off | tag | junk
    antivirus: str = "off"  # new accounts' default: off | quarantine

    def check(self) -> None:
        """Refuse values no scanner could be reached with, and unknown choices."""
        from mailhaul.domain.filtering import scanner_failure, spam_action, virus_action

        if self.rspamd and not self.rspamd.startswith(("http://", "https://")):
            raise InvalidSetting(
                "filter.rspamd",
                f"setting filter.rspamd must be an http:// address, not {self.rspamd!r}",
            )
        for name in ("spamd", "clamd"):
            value = getattr(self, name)
            host, sep, port = value.rpartition(":")
            if value and not value.startswith("/") and not (sep and host and port.isdigit()):
                raise InvalidSetting(
                    f"filter.{name}",
                    f"setting filter.{name} must be host:port or the path of a unix socket, "
                    f"not {value!r}",
                )
        for name, parse in (
            ("on_scanner_failure", scanner_failure),
            ("antispam", spam_action),
            ("antivirus", virus_action),
        ):
            try:
                parse(getattr(self, name))
            except ConfigError as exc:
                raise InvalidSetting(f"filter.{name}", f"setting filter.{name}: {exc}") from None
        if self.antispam != "off" and not (self.rspamd or self.spamd):
            raise InvalidSetting(
                "filter.antispam",
                "setting filter.antispam: new accounts cannot have a spam check without a "
                "scanner: set filter.rspamd or filter.spamd first",
            )
        if self.antivirus != "off" and not self.clamd:
            raise InvalidSetting(
                "filter.antivirus",
                "setting filter.antivirus: new accounts cannot have a virus check without a "
                "scanner: set filter.clamd first",
            )
        if self.max_size > MAX_SCANNED:
            raise InvalidSetting(
                "filter.max_size",
                f"setting filter.max_size must be at most {MAX_SCANNED} (50 MiB): rspamd "
                "drops the connection for larger messages by default, which would hold them "
                "on the server",
            )
        if self.max_size <= 0 or self.timeout <= 0:
            name = "filter.max_size" if self.max_size <= 0 else "filter.timeout"
            raise InvalidSetting(name, f"setting {name} must be positive")


@dataclass(frozen=True)
class NotifySettings:
    """When and to whom notices about broken accounts go: the ``[notify]`` keys."""

    mailbox: bool = True  # notices delivered into the recipients' own mailboxes
    after_failures: int = 3  # failing runs in a row before a notice
    after_minutes: int = 60  # … or this long failing, whichever comes first
    admins: bool = False  # admins (and the domain's admins) get every notice too
    cert_days: int = 14  # a source server's certificate expiring sooner: a notice
    smtp: str = ""  # host:port of a relay notices go through, as e-mail (else: local delivery)
    webhook: str = ""  # https URL every incident event is POSTed to (JSON, HMAC-signed)
    webhook_secret_file: str = ""  # the HMAC-SHA256 key, read from this file (0600)

    def check(self) -> None:
        """Refuse thresholds that are not positive, and a webhook that is not https (or
        http on loopback) or has no secret to sign with."""
        from mailhaul.domain.oauth import check_endpoint_url

        for name in ("after_failures", "after_minutes", "cert_days"):
            if getattr(self, name) <= 0:
                raise InvalidSetting(f"notify.{name}", f"setting notify.{name} must be positive")
        host, sep, port = self.smtp.rpartition(":")
        if self.smtp and not (sep and host and port.isdigit()):
            raise InvalidSetting(
                "notify.smtp", f"setting notify.smtp must be host:port, not {self.smtp!r}"
            )
        if self.webhook:
            try:
                check_endpoint_url(self.webhook, "notify.webhook")
            except ConfigError as exc:
                raise InvalidSetting("notify.webhook", f"setting {exc}") from None
            if not self.webhook_secret_file:
                raise InvalidSetting(
                    "notify.webhook",
                    "setting notify.webhook needs notify.webhook_secret_file (the signing key)",
                )


NOTIFY_KEYS: dict[str, tuple[type, Any]] = {
    item.name: (get_type_hints(NotifySettings)[item.name], item.default)
    for item in fields(NotifySettings)
}

FILTER_KEYS: dict[str, tuple[type, Any]] = {
    item.name: (get_type_hints(FilterSettings)[item.name], item.default)
    for item in fields(FilterSettings)
}

# key -> (type, default), from the fields above.
DELIVERY_KEYS: dict[str, tuple[type, Any]] = {
    item.name: (get_type_hints(DeliverySettings)[item.name], item.default)
    for item in fields(DeliverySettings)
}

# What an admin may change in the web UI, the API or `mailhaul settings` (stored in the
# database). Not `mda` (a web admin must not make the service run a command), nor the keys that
# name files on the machine (`smtp_ca_file`, `smtp_username` + `smtp_password_file`).
EDITABLE_SETTINGS = (
    "poll.interval",
    "poll.max_size",
    "poll.per_host_limit",
    "poll.max_backoff",
    "poll.auth_failures_to_pause",
    "runs.keep_days",
    "push.enabled",
    "limits.daily_bytes_per_host",
    "limits.connections_per_account",
    "sources.allow_private",
    "sources.allowed_ports",
    *(f"filter.{key}" for key in FILTER_KEYS),
    *(f"notify.{key}" for key in NOTIFY_KEYS if key != "webhook_secret_file"),
    "web.public_url",
)
DOMAINS_SETTING = "delivery.domains"  # stored as {domain: {key: value}}
EDITABLE_DOMAIN_KEYS = ("method", "lmtp", "smtp", "maildir_path", "smtp_starttls", "timeout")
MAX_NUMBER = 2**53  # larger whole numbers would not survive a float (or a JSON reader)
MAX_TEXT = 1000  # a stored address or path
MAX_DOMAINS = 1000

# (section, key) -> (type, default); a default of None means "derived from home".
SETTING_SCHEMA: dict[tuple[str, str], tuple[type, Any]] = {
    ("database", "url"): (str, None),
    **{("delivery", key): spec for key, spec in DELIVERY_KEYS.items()},
    ("poll", "interval"): (int, 300),
    ("poll", "timeout"): (float, 60.0),
    ("poll", "workers"): (int, 4),
    ("poll", "max_size"): (int, 100 * 1024 * 1024),
    ("poll", "per_host_limit"): (int, 4),
    ("poll", "max_backoff"): (int, 6 * 3600),
    ("poll", "auth_failures_to_pause"): (int, 5),
    ("poll", "lease_ttl"): (int, 300),
    ("poll", "stall_timeout"): (float, 1800.0),
    ("poll", "stop_grace"): (float, 60.0),
    ("runs", "keep_days"): (int, 30),
    ("push", "enabled"): (bool, True),
    ("push", "connects_per_second"): (float, 5.0),
    ("push", "keepalive"): (int, 300),
    ("limits", "daily_bytes_per_host"): (str, DEFAULT_DAILY_BYTES),
    ("limits", "connections_per_account"): (str, DEFAULT_CONNECTIONS),
    ("log", "format"): (str, "text"),
    ("log", "level"): (str, "info"),
    ("log", "syslog"): (bool, False),
    ("web", "listen"): (str, "127.0.0.1:8025"),
    ("web", "cookie_secure"): (bool, True),
    ("web", "session_hours"): (int, 12),
    ("web", "trusted_proxies"): (str, ""),
    ("sources", "allow_private"): (bool, False),
    ("sources", "allowed_ports"): (str, "110,143,993,995"),
    **{("filter", key): spec for key, spec in FILTER_KEYS.items()},
    **{("notify", key): spec for key, spec in NOTIFY_KEYS.items()},
    ("web", "public_url"): (str, ""),
}


class InvalidSetting(ConfigError):
    """Raised when one setting's value is invalid; ``name`` names it (``poll.interval``)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def coerce_setting(name: str, kind: type, value: Any) -> Any:
    """``value`` as a ``kind`` (strings as in environment variables: ``"300"``, ``"yes"``)."""
    if kind is int and isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit() or len(value) > 20:
            raise InvalidSetting(name, f"setting {name} must be a whole number, not {value!r}")
        value = int(value)
    if kind is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise InvalidSetting(name, f"setting {name} must be true or false, not {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidSetting(name, f"setting {name} must be true or false, not {value!r}")
        return value
    if kind is float and isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise InvalidSetting(name, f"setting {name} must be a number, not {value!r}") from None
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            raise InvalidSetting(name, f"setting {name} must be a finite number, not {value!r}")
        return number
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidSetting(name, f"setting {name} must be a {kind.__name__}, not {value!r}")
    if kind is int and isinstance(value, int) and abs(value) > MAX_NUMBER:
        raise InvalidSetting(name, f"setting {name} is too large")
    return value


def normalise_domain(domain: str) -> str:
    """A domain name in lower-case ASCII (IDNA); InvalidSetting when it is not one."""
    where = f'delivery.domains."{domain}"'
    if not isinstance(domain, str) or not domain.strip():
        raise InvalidSetting(where, "a domain name is required")
    try:
        return split_address(f"postmaster@{domain.strip().rstrip('.')}")[1]
    except ConfigError:
        raise InvalidSetting(where, f"{domain!r} is not a domain name") from None


def stored_domains(stored: Any) -> dict[str, dict[str, Any]]:
    """The database's per-domain delivery (``{domain: {key: value}}``), checked: only
    ``EDITABLE_DOMAIN_KEYS``, and a method among ``EDITABLE_METHODS``."""
    if stored is None:
        return {}
    if not isinstance(stored, dict):
        raise InvalidSetting(DOMAINS_SETTING, f"{DOMAINS_SETTING} must map domains to tables")
    if len(stored) > MAX_DOMAINS:
        raise InvalidSetting(DOMAINS_SETTING, f"at most {MAX_DOMAINS} domains may be set here")
    result: dict[str, dict[str, Any]] = {}
    for raw_domain, table in stored.items():
        domain = normalise_domain(raw_domain)
        where = f'delivery.domains."{domain}"'
        if not isinstance(table, dict):
            raise InvalidSetting(where, f"{where} must be a table of settings")
        values: dict[str, Any] = {}
        for key, value in table.items():
            name = f"{where}.{key}"
            if key not in EDITABLE_DOMAIN_KEYS:
                raise InvalidSetting(
                    name, f"{name} cannot be set here (only {', '.join(EDITABLE_DOMAIN_KEYS)})"
                )
            values[key] = coerce_setting(name, DELIVERY_KEYS[key][0], value)
            if isinstance(values[key], str) and (
                len(values[key]) > MAX_TEXT or any(ord(c) < 32 or ord(c) == 127 for c in value)
            ):
                raise InvalidSetting(
                    name, f"{name} must be at most {MAX_TEXT} characters, without control ones"
                )
        if "method" in values and values["method"] not in EDITABLE_METHODS:
            raise InvalidSetting(
                f"{where}.method", f"{where}.method must be one of {', '.join(EDITABLE_METHODS)}"
            )
        result[domain] = values
    return result


def canonical_setting(name: str, value: Any) -> Any:
    """An editable setting's value as it is stored: coerced like ``mailhaul.toml``'s
    (``"600"`` → 600); ``delivery.domains`` checked domain by domain."""
    if name == DOMAINS_SETTING:
        return stored_domains(value)
    if name not in EDITABLE_SETTINGS:
        raise InvalidSetting(name, f"setting {name} cannot be changed here")
    section, _, key = name.partition(".")
    return coerce_setting(name, SETTING_SCHEMA[(section, key)][0], value)
