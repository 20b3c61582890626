"""Settings: command-line flags > ``MAILHAUL_*`` environment > the database (what an admin
edits in the web UI, ``EDITABLE_SETTINGS`` only) > ``mailhaul.toml`` > defaults.

The file, environment and flag layers are read once (``read_layers``); ``SettingsLayers.resolve``
puts the database's values on top and validates everything in one place, so a value an admin
saves is checked exactly like one in ``mailhaul.toml``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailhaul.domain.errors import ConfigError
from mailhaul.domain.limits import HostLimits
from mailhaul.domain.validation import MAX_MAX_SIZE, MIN_INTERVAL
from mailhaul.settings_keys import (
    CONFIG_NAME,
    DELIVERY_KEYS,
    DOMAINS_SETTING,
    EDITABLE_SETTINGS,
    FILTER_KEYS,
    NOTIFY_KEYS,
    SETTING_SCHEMA,
    DeliverySettings,
    FilterSettings,
    InvalidSetting,
    NotifySettings,
    coerce_setting,
    stored_domains,
)
from mailhaul.settings_values import limits_setting, ports_setting, proxies_setting


def default_home() -> Path:
    """``$MAILHAUL_HOME``, else ``~/.local/share/mailhaul``."""
    env = os.environ.get("MAILHAUL_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "mailhaul"


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
    stall_timeout: float = 1800.0
    stop_grace: float = 60.0
    delivery_domains: dict[str, DeliverySettings] = field(default_factory=dict)
    runs_keep_days: int = 30
    push_enabled: bool = True
    push_connects_per_second: float = 5.0
    push_keepalive: int = 300
    limits: HostLimits = field(default_factory=HostLimits)
    log_format: str = "text"
    log_level: str = "info"
    log_syslog: bool = False
    web_listen: str = "127.0.0.1:8025"
    web_cookie_secure: bool = True
    web_session_hours: int = 12
    web_trusted_proxies: tuple[str, ...] = ()
    sources_allow_private: bool = False
    sources_allowed_ports: frozenset[int] = frozenset({110, 143, 993, 995})
    filters: FilterSettings = field(default_factory=FilterSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    web_public_url: str = ""
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
        if (section, key) not in SETTING_SCHEMA and (section, key) != ("delivery", "domains")
    ]
    if unknown:
        raise ConfigError(f"{home / CONFIG_NAME}: unknown setting(s) {', '.join(unknown)}")
    return SettingsLayers(
        home=home,
        flags={name: value for name, value in (overrides or {}).items() if value is not None},
        environ={name: value for name, value in env.items() if name.startswith("MAILHAUL_")},
        toml=toml,
    )


EMPTY_ENV_IS_A_VALUE = frozenset({"web.listen"})
"""Settings whose empty value means something (``web.listen = ""``: no web UI), so that an
empty ``MAILHAUL_…`` variable sets them; for the others an empty variable counts as unset."""


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
        variable = self.environ.get(env_name(name))
        if variable or (variable == "" and name in EMPTY_ENV_IS_A_VALUE):
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
        for (section, key), (kind, default) in SETTING_SCHEMA.items():
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
        if values["poll.max_size"] > MAX_MAX_SIZE:
            raise InvalidSetting("poll.max_size", "setting poll.max_size must be at most 1 TiB")
        if not 0 < values["push.connects_per_second"] <= 1000:
            raise InvalidSetting(
                "push.connects_per_second",
                "setting push.connects_per_second must be more than 0 and at most 1000",
            )
        if not 5 <= values["push.keepalive"] <= 1740:
            raise InvalidSetting(
                "push.keepalive",
                "setting push.keepalive must be 5 to 1740 seconds (IDLE ends before 29 min)",
            )
        if values["runs.keep_days"] < 0:
            raise InvalidSetting("runs.keep_days", "setting runs.keep_days must be 0 or more")
        for name in ("poll.timeout", "poll.stall_timeout"):
            if values[name] <= 0:
                raise InvalidSetting(name, f"setting {name} must be positive")
        if values["poll.stop_grace"] < 0:
            raise InvalidSetting("poll.stop_grace", "setting poll.stop_grace must be 0 or more")
        delivery = DeliverySettings(**{key: values[f"delivery.{key}"] for key in DELIVERY_KEYS})
        delivery.check("delivery")
        filters = FilterSettings(**{key: values[f"filter.{key}"] for key in FILTER_KEYS})
        filters.check()
        notify = NotifySettings(**{key: values[f"notify.{key}"] for key in NOTIFY_KEYS})
        notify.check()
        return Settings(
            home=home,
            database_url=url,
            delivery=delivery,
            filters=filters,
            notify=notify,
            web_public_url=values["web.public_url"].rstrip("/"),
            delivery_domains=self._domain_overrides(delivery, stored.get(DOMAINS_SETTING)),
            interval=values["poll.interval"],
            timeout=values["poll.timeout"],
            workers=values["poll.workers"],
            max_size=values["poll.max_size"],
            per_host_limit=values["poll.per_host_limit"],
            max_backoff=values["poll.max_backoff"],
            auth_failures_to_pause=values["poll.auth_failures_to_pause"],
            lease_ttl=values["poll.lease_ttl"],
            stall_timeout=values["poll.stall_timeout"],
            stop_grace=values["poll.stop_grace"],
            runs_keep_days=values["runs.keep_days"],
            push_enabled=values["push.enabled"],
            push_connects_per_second=values["push.connects_per_second"],
            push_keepalive=values["push.keepalive"],
            limits=limits_setting(
                values["limits.daily_bytes_per_host"], values["limits.connections_per_account"]
            ),
            log_format=values["log.format"],
            log_level=values["log.level"],
            log_syslog=values["log.syslog"],
            web_listen=values["web.listen"],
            web_cookie_secure=values["web.cookie_secure"],
            web_session_hours=values["web.session_hours"],
            web_trusted_proxies=proxies_setting(values["web.trusted_proxies"]),
            sources_allow_private=values["sources.allow_private"],
            sources_allowed_ports=ports_setting(values["sources.allowed_ports"]),
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
            unknown = sorted(set(table) - set(DELIVERY_KEYS))
            if unknown:
                raise ConfigError(
                    f"{self.home / CONFIG_NAME}: unknown setting(s) {where}.{unknown[0]}"
                )
            changes[domain] = {
                key: coerce_setting(f"{where}.{key}", DELIVERY_KEYS[key][0], value)
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
