"""Settings: command-line flags > ``MAILHAUL_*`` environment > the database (what an admin
edits in the web UI, ``EDITABLE_SETTINGS`` only) > ``mailhaul.toml`` > defaults.

The file, environment and flag layers are read once (``read_layers``); ``SettingsLayers.resolve``
puts the database's values on top and validates everything in one place, so a value an admin
saves is checked exactly like one in ``mailhaul.toml``.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailhaul.domain.addresses import split_address
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.validation import MIN_INTERVAL

CONFIG_NAME = "mailhaul.toml"
DEFAULT_MAILDIR = "{home}/mail/{domain}/{local}"

# (section, key) -> (type, default); a default of None means "derived from home".
_DELIVERY_KEYS: dict[str, tuple[type, Any]] = {
    "method": (str, "maildir"),
    "maildir_path": (str, DEFAULT_MAILDIR),
    "lmtp": (str, ""),
    "smtp": (str, ""),
    "smtp_starttls": (bool, False),
    "smtp_ca_file": (str, ""),
    "smtp_username": (str, ""),
    "smtp_password_file": (str, ""),
    "mda": (str, ""),
    "timeout": (float, 120.0),
    "sender": (str, ""),
}
DELIVERY_METHODS = ("maildir", "lmtp", "smtp", "mda")

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
    "sources.allow_private",
    "sources.allowed_ports",
)
DOMAINS_SETTING = "delivery.domains"  # stored as {domain: {key: value}}
EDITABLE_DOMAIN_KEYS = ("method", "lmtp", "smtp", "maildir_path", "smtp_starttls", "timeout")
EDITABLE_METHODS = ("maildir", "lmtp", "smtp")
MAX_NUMBER = 2**53  # larger whole numbers would not survive a float (or a JSON reader)
MAX_TEXT = 1000  # a stored address or path
MAX_DOMAINS = 1000

_SCHEMA: dict[tuple[str, str], tuple[type, Any]] = {
    ("database", "url"): (str, None),
    **{("delivery", key): spec for key, spec in _DELIVERY_KEYS.items()},
    ("poll", "interval"): (int, 300),
    ("poll", "timeout"): (float, 60.0),
    ("poll", "workers"): (int, 4),
    ("poll", "max_size"): (int, 100 * 1024 * 1024),
    ("poll", "per_host_limit"): (int, 4),
    ("poll", "max_backoff"): (int, 6 * 3600),
    ("poll", "auth_failures_to_pause"): (int, 5),
    ("poll", "lease_ttl"): (int, 300),
    ("runs", "keep_days"): (int, 30),
    ("log", "format"): (str, "text"),
    ("log", "level"): (str, "info"),
    ("log", "syslog"): (bool, False),
    ("web", "listen"): (str, "127.0.0.1:8025"),
    ("web", "cookie_secure"): (bool, True),
    ("web", "session_hours"): (int, 12),
    ("sources", "allow_private"): (bool, False),
    ("sources", "allowed_ports"): (str, "110,143,993,995"),
}

DEFAULT_TOML = """\
# mailhaul settings. Environment variables MAILHAUL_<SECTION>_<KEY> override these,
# command-line flags override both. An admin may also change some (poll.interval, max_size,
# per_host_limit, max_backoff, auth_failures_to_pause, runs.keep_days, sources.*, per-domain
# delivery) in the web UI or with `mailhaul settings set`: stored in the database, they
# override this file. This file is read at start: restart to apply an edit.

[database]
# url = "sqlite:///{home}/mailhaul.db"   # or postgresql://user@host/db

[delivery]
method = "maildir"    # maildir | lmtp | smtp | mda
# Maildir per destination address; {home}, {address}, {domain}, {local} are filled in.
maildir_path = "{home}/mail/{domain}/{local}"
# lmtp = "127.0.0.1:24"            # host:port, or the path of a unix socket
# smtp = "127.0.0.1:25"            # host:port of the MTA or relay
# smtp_starttls = false
# smtp_username = ""               # AUTH for a relay; the password is read from:
# smtp_password_file = ""
# mda = "/usr/lib/dovecot/dovecot-lda -d {address} -f {sender}"   # run without a shell
# timeout = 120                    # seconds for one LMTP/SMTP/MDA delivery
# sender = ""                      # fixed envelope sender; default Return-Path, else From, else <>

# Per-domain overrides take the same keys, e.g.:
# [delivery.domains."example.org"]
# method = "lmtp"
# lmtp = "/var/run/dovecot/lmtp"

[poll]
interval = 300        # default seconds between polls of an account
timeout = 60          # network timeout, seconds
workers = 4           # accounts polled at once by `mailhaul serve`
max_size = 104857600  # default per-message size limit, bytes
per_host_limit = 4    # polls of accounts on one source host at once (per process)
max_backoff = 21600   # longest wait after repeated failures, seconds
auth_failures_to_pause = 5  # login failures in a row before an account is paused
lease_ttl = 300       # seconds a dead process's lease blocks an account

[runs]
keep_days = 30        # run history (and run logs) older than this is deleted; 0 keeps all

[log]
format = "text"       # text | json (one JSON object a line: ts, level, logger, message, ...)
level = "info"        # debug | info | warning | error
syslog = false        # also log to /dev/log, facility mail (lands in /var/log/maillog)

[web]
listen = "127.0.0.1:8025"   # the web UI, /api/v1, /healthz and /metrics; "" switches it off
cookie_secure = true        # session cookies only over HTTPS (browsers also allow localhost)
session_hours = 12          # a login lasts this long

[sources]
# Source hosts non-admin users may enter: by default no loopback, private or link-local
# addresses, and only these ports. Admins may use any.
allow_private = false
allowed_ports = "110,143,993,995"
"""


class InvalidSetting(ConfigError):
    """Raised when one setting's value is invalid; ``name`` names it (``poll.interval``)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def default_home() -> Path:
    """``$MAILHAUL_HOME``, else ``~/.local/share/mailhaul``."""
    env = os.environ.get("MAILHAUL_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "mailhaul"


@dataclass(frozen=True)
class DeliverySettings:
    """How mail for one domain (or the default) is delivered locally."""

    method: str = "maildir"
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

    def check(self, where: str) -> None:
        """Refuse a method without the setting it needs."""
        if self.method not in DELIVERY_METHODS:
            raise InvalidSetting(
                f"{where}.method", f"{where}.method must be one of {', '.join(DELIVERY_METHODS)}"
            )
        needed = {"lmtp": self.lmtp, "smtp": self.smtp, "mda": self.mda}
        if self.method in needed and not needed[self.method]:
            raise InvalidSetting(
                f"{where}.{self.method}",
                f"{where}.method is {self.method!r} but {where}.{self.method} is empty",
            )
        if self.method == "maildir" and not self.maildir_path:
            raise InvalidSetting(
                f"{where}.maildir_path",
                f"{where}.method is 'maildir' but {where}.maildir_path is empty",
            )
        if self.timeout <= 0:
            raise InvalidSetting(f"{where}.timeout", f"{where}.timeout must be positive")


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one process."""

    home: Path
    database_url: str
    delivery: DeliverySettings
    interval: int
    timeout: float
    workers: int
    max_size: int
    per_host_limit: int = 4
    max_backoff: int = 6 * 3600
    auth_failures_to_pause: int = 5
    lease_ttl: int = 300
    delivery_domains: dict[str, DeliverySettings] = field(default_factory=dict)
    runs_keep_days: int = 30
    log_format: str = "text"
    log_level: str = "info"
    log_syslog: bool = False
    web_listen: str = "127.0.0.1:8025"
    web_cookie_secure: bool = True
    web_session_hours: int = 12
    sources_allow_private: bool = False
    sources_allowed_ports: frozenset[int] = frozenset({110, 143, 993, 995})
    # Where these came from: the fixed layers, and the database's values laid on top of them
    # (so the values can be resolved again when an admin changes the database's).
    layers: SettingsLayers | None = field(default=None, repr=False, compare=False)
    stored: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def maildir_path(self) -> str:
        """The default Maildir template."""
        return self.delivery.maildir_path

    @property
    def key_file(self) -> Path:
        """The encryption key file (mode 0600), outside the database."""
        return self.home / "keys"

    @property
    def config_file(self) -> Path:
        """The ``mailhaul.toml`` of this home."""
        return self.home / CONFIG_NAME


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


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def load_settings(
    home: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    stored: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings; ``overrides`` are flags keyed ``section.key`` (highest priority),
    ``stored`` the database's values (see ``EDITABLE_SETTINGS``)."""
    return read_layers(home, overrides, environ).resolve(stored)


def read_layers(
    home: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> SettingsLayers:
    """The flags, the ``MAILHAUL_*`` environment and ``mailhaul.toml``, read once."""
    env = os.environ if environ is None else environ
    home = (home or (Path(env["MAILHAUL_HOME"]) if env.get("MAILHAUL_HOME") else None)) or (
        default_home()
    )
    home = home.expanduser().absolute()
    toml = _read_toml(home / CONFIG_NAME)
    unknown = [
        f"{section}.{key}"
        for section, table in toml.items()
        for key in (table if isinstance(table, dict) else {"": None})
        if (section, key) not in _SCHEMA and (section, key) != ("delivery", "domains")
    ]
    if unknown:
        raise ConfigError(f"{home / CONFIG_NAME}: unknown setting(s) {', '.join(unknown)}")
    return SettingsLayers(
        home=home,
        flags={name: value for name, value in (overrides or {}).items() if value is not None},
        environ={name: value for name, value in env.items() if name.startswith("MAILHAUL_")},
        toml=toml,
    )


def env_name(name: str) -> str:
    """The environment variable of a setting: ``poll.interval`` → ``MAILHAUL_POLL_INTERVAL``."""
    return "MAILHAUL_" + name.replace(".", "_").upper()


@dataclass(frozen=True)
class SettingsLayers:
    """The layers read at start (flags, environment, ``mailhaul.toml``); the database's
    values, which may change while the process runs, are laid on top in ``resolve``."""

    home: Path
    flags: Mapping[str, Any]
    environ: Mapping[str, str]
    toml: Mapping[str, Any]

    def source_of(self, name: str, stored: Mapping[str, Any] | None = None) -> str:
        """Where ``section.key`` comes from: flag, environment, database, file or default."""
        section, _, key = name.partition(".")
        if name in self.flags:
            return "flag"
        if self.environ.get(env_name(name)):
            return "environment"
        if stored and name in stored:
            return "database"
        table = self.toml.get(section, {})
        if isinstance(table, dict) and key in table:
            return CONFIG_NAME
        return "default"

    def file_domains(self) -> dict[str, dict[str, Any]]:
        """``[delivery.domains."…"]`` of ``mailhaul.toml``, domains in lower case."""
        tables = self.toml.get("delivery", {}).get("domains", {})
        if not isinstance(tables, dict):
            raise ConfigError(
                f"{self.home / CONFIG_NAME}: delivery.domains must be a table of domains"
            )
        result: dict[str, dict[str, Any]] = {}
        for domain, table in tables.items():
            if not isinstance(table, dict):
                raise ConfigError(
                    f'{self.home / CONFIG_NAME}: delivery.domains."{domain}" must be a table'
                )
            result[domain.lower()] = table
        return result

    def resolve(self, stored: Mapping[str, Any] | None = None) -> Settings:
        """The settings with the database's values on top of the file's (checked here:
        a bad value raises InvalidSetting naming it)."""
        stored = dict(stored or {})
        for name in stored:
            if name not in EDITABLE_SETTINGS and name != DOMAINS_SETTING:
                raise InvalidSetting(name, f"setting {name} cannot be changed in the database")
        values: dict[str, Any] = {}
        for (section, key), (kind, default) in _SCHEMA.items():
            name = f"{section}.{key}"
            source = self.source_of(name, stored)
            if source == "flag":
                raw = self.flags[name]
            elif source == "environment":
                raw = self.environ[env_name(name)]
            elif source == "database":
                raw = stored[name]
            elif source == CONFIG_NAME:
                raw = self.toml[section][key]
            else:
                raw = default
            values[name] = None if raw is None else coerce_setting(name, kind, raw)
        home = self.home
        url = values["database.url"] or f"sqlite:///{home / 'mailhaul.db'}"
        url = url.replace("{home}", str(home))
        for name in (
            "poll.interval",
            "poll.workers",
            "poll.max_size",
            "poll.per_host_limit",
            "poll.max_backoff",
            "poll.auth_failures_to_pause",
            "poll.lease_ttl",
            "web.session_hours",
        ):
            if values[name] <= 0:
                raise InvalidSetting(name, f"setting {name} must be positive")
        if values["poll.interval"] < MIN_INTERVAL:
            raise InvalidSetting(
                "poll.interval", f"setting poll.interval must be at least {MIN_INTERVAL} seconds"
            )
        if values["runs.keep_days"] < 0:
            raise InvalidSetting("runs.keep_days", "setting runs.keep_days must be 0 or more")
        if values["poll.timeout"] <= 0:
            raise InvalidSetting("poll.timeout", "setting poll.timeout must be positive")
        delivery = DeliverySettings(**{key: values[f"delivery.{key}"] for key in _DELIVERY_KEYS})
        delivery.check("delivery")
        return Settings(
            home=home,
            database_url=url,
            delivery=delivery,
            delivery_domains=self._domain_overrides(delivery, stored.get(DOMAINS_SETTING)),
            interval=values["poll.interval"],
            timeout=values["poll.timeout"],
            workers=values["poll.workers"],
            max_size=values["poll.max_size"],
            per_host_limit=values["poll.per_host_limit"],
            max_backoff=values["poll.max_backoff"],
            auth_failures_to_pause=values["poll.auth_failures_to_pause"],
            lease_ttl=values["poll.lease_ttl"],
            runs_keep_days=values["runs.keep_days"],
            log_format=values["log.format"],
            log_level=values["log.level"],
            log_syslog=values["log.syslog"],
            web_listen=values["web.listen"],
            web_cookie_secure=values["web.cookie_secure"],
            web_session_hours=values["web.session_hours"],
            sources_allow_private=values["sources.allow_private"],
            sources_allowed_ports=_ports(values["sources.allowed_ports"]),
            layers=self,
            stored=stored,
        )

    def _domain_overrides(
        self, default: DeliverySettings, stored: Any
    ) -> dict[str, DeliverySettings]:
        """Per-domain delivery: the default, then the file's table, then the database's."""
        changes: dict[str, dict[str, Any]] = {}
        for domain, table in self.file_domains().items():
            where = f'delivery.domains."{domain}"'
            unknown = sorted(set(table) - set(_DELIVERY_KEYS))
            if unknown:
                raise ConfigError(
                    f"{self.home / CONFIG_NAME}: unknown setting(s) {where}.{unknown[0]}"
                )
            changes[domain] = {
                key: coerce_setting(f"{where}.{key}", _DELIVERY_KEYS[key][0], value)
                for key, value in table.items()
            }
        for domain, table in stored_domains(stored).items():
            changes.setdefault(domain, {}).update(table)
        result: dict[str, DeliverySettings] = {}
        for domain, domain_changes in changes.items():
            settings = replace(default, **domain_changes)
            settings.check(f'delivery.domains."{domain}"')
            result[domain] = settings
        return result


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
            values[key] = coerce_setting(name, _DELIVERY_KEYS[key][0], value)
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


def _ports(text: str) -> frozenset[int]:
    """``"110, 995"`` → {110, 995}; a clear error on anything else."""
    ports: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise InvalidSetting(
                "sources.allowed_ports",
                f'setting sources.allowed_ports must list TCP ports like "110,995", not {text!r}',
            )
        ports.add(int(part))
    return frozenset(ports)


def canonical_setting(name: str, value: Any) -> Any:
    """An editable setting's value as it is stored: coerced like ``mailhaul.toml``'s
    (``"600"`` → 600); ``delivery.domains`` checked domain by domain."""
    if name == DOMAINS_SETTING:
        return stored_domains(value)
    if name not in EDITABLE_SETTINGS:
        raise InvalidSetting(name, f"setting {name} cannot be changed here")
    section, _, key = name.partition(".")
    return coerce_setting(name, _SCHEMA[(section, key)][0], value)
