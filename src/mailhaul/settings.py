"""Settings: command-line flags > ``MAILHAUL_*`` environment > ``mailhaul.toml`` > defaults."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailhaul.domain.errors import ConfigError

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
# command-line flags override both.

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
            raise ConfigError(f"{where}.method must be one of {', '.join(DELIVERY_METHODS)}")
        needed = {"lmtp": self.lmtp, "smtp": self.smtp, "mda": self.mda}
        if self.method in needed and not needed[self.method]:
            raise ConfigError(
                f"{where}.method is {self.method!r} but {where}.{self.method} is empty"
            )
        if self.timeout <= 0:
            raise ConfigError(f"{where}.timeout must be positive")


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


def _coerce(name: str, kind: type, value: Any) -> Any:
    if kind is int and isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            raise ConfigError(f"setting {name} must be a whole number, not {value!r}")
        return int(value)
    if kind is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"setting {name} must be true or false, not {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"setting {name} must be true or false, not {value!r}")
        return value
    if kind is float and isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"setting {name} must be a number, not {value!r}") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"setting {name} must be a {kind.__name__}, not {value!r}")
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
) -> Settings:
    """Resolve settings; ``overrides`` are flags keyed ``section.key`` (highest priority)."""
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
    values: dict[str, Any] = {}
    for (section, key), (kind, default) in _SCHEMA.items():
        name = f"{section}.{key}"
        env_name = f"MAILHAUL_{section}_{key}".upper()
        if overrides and overrides.get(name) is not None:
            raw = overrides[name]
        elif env.get(env_name):
            raw = env[env_name]
        elif key in toml.get(section, {}):
            raw = toml[section][key]
        else:
            raw = default
        values[name] = None if raw is None else _coerce(name, kind, raw)
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
            raise ConfigError(f"setting {name} must be positive")
    if values["poll.timeout"] <= 0:
        raise ConfigError("setting poll.timeout must be positive")
    delivery = DeliverySettings(**{key: values[f"delivery.{key}"] for key in _DELIVERY_KEYS})
    delivery.check("delivery")
    return Settings(
        home=home,
        database_url=url,
        delivery=delivery,
        delivery_domains=_domain_overrides(home, toml, delivery),
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
    )


def _ports(text: str) -> frozenset[int]:
    """``"110, 995"`` → {110, 995}; a clear error on anything else."""
    ports: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ConfigError(
                f'setting sources.allowed_ports must list TCP ports like "110,995", not {text!r}'
            )
        ports.add(int(part))
    return frozenset(ports)


def _domain_overrides(
    home: Path, toml: dict[str, Any], default: DeliverySettings
) -> dict[str, DeliverySettings]:
    """``[delivery.domains."example.org"]`` tables, each on top of the default delivery."""
    tables = toml.get("delivery", {}).get("domains", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{home / CONFIG_NAME}: delivery.domains must be a table of domains")
    result: dict[str, DeliverySettings] = {}
    for domain, table in tables.items():
        where = f'delivery.domains."{domain}"'
        if not isinstance(table, dict):
            raise ConfigError(f"{home / CONFIG_NAME}: {where} must be a table")
        unknown = sorted(set(table) - set(_DELIVERY_KEYS))
        if unknown:
            raise ConfigError(f"{home / CONFIG_NAME}: unknown setting(s) {where}.{unknown[0]}")
        changes = {
            key: _coerce(f"{where}.{key}", _DELIVERY_KEYS[key][0], value)
            for key, value in table.items()
        }
        settings = replace(default, **changes)
        settings.check(where)
        result[domain.lower()] = settings
    return result
