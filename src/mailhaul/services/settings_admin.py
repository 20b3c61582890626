"""Settings an admin edits (web UI, API, `mailhaul settings`): what each editable setting is
and where it comes from; changes checked by ``SettingsLayers.resolve`` (the one validator of
``mailhaul.toml`` too) and stored in the database, between the environment and the file.

A setting given by a flag or a ``MAILHAUL_*`` variable cannot be changed here: the
environment would win anyway, so the change is refused rather than silently ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.stored_settings import StoredSetting, StoredSettingsStore
from mailhaul.delivery_methods import EDITABLE_METHODS
from mailhaul.domain.access import Forbidden, Principal
from mailhaul.domain.errors import MailhaulError
from mailhaul.domain.validation import FieldError
from mailhaul.settings import Settings, SettingsLayers, env_name
from mailhaul.settings_keys import (
    CONFIG_NAME,
    DOMAINS_SETTING,
    EDITABLE_DOMAIN_KEYS,
    EDITABLE_SETTINGS,
    DeliverySettings,
    InvalidSetting,
    canonical_setting,
    normalise_domain,
)

logger = logging.getLogger(__name__)
DOMAIN_PREFIX = DOMAINS_SETTING + "."
# Shown to people: a flag is part of how the process was started, as the environment is.
SOURCE_LABELS = {
    "flag": "environment",
    "environment": "environment",
    "database": "database",
    CONFIG_NAME: CONFIG_NAME,
    "default": "default",
}


class SettingsRejected(FieldError):
    """Raised when a change is refused; ``errors`` maps each setting named to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        first, message = next(iter(errors.items()))
        super().__init__(first, message)
        self.errors = dict(errors)


@dataclass(frozen=True)
class SettingValue:
    """One editable setting: its effective value and where that comes from."""

    key: str
    value: Any
    source: str  # default | mailhaul.toml | database | environment
    env_var: str
    updated_at: float | None = None
    updated_by: str | None = None

    @property
    def editable(self) -> bool:
        """Whether an admin may change it here (not when the environment sets it)."""
        return self.source != "environment"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "key": self.key,
            "value": self.value,
            "source": self.source,
            "editable": self.editable,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class DomainDelivery:
    """How one domain's mail is delivered: effective values, each key's source."""

    domain: str
    values: dict[str, Any]  # EDITABLE_DOMAIN_KEYS, effective
    sources: dict[str, str]  # key -> default | mailhaul.toml | database
    stored: dict[str, Any]  # what the database sets for this domain
    in_file: bool  # mailhaul.toml has a table for it (removing the database's leaves that)
    method_in_file: str = ""  # the effective method when the web cannot choose it (mda)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "domain": self.domain,
            "values": self.values,
            "sources": self.sources,
            "stored": self.stored,
            "in_file": self.in_file,
        }


@dataclass(frozen=True)
class SettingsOverview:
    """The editable settings as they stand, for the settings page, the API and the CLI."""

    values: list[SettingValue]
    domains: list[DomainDelivery]
    domains_updated_at: float | None = None
    domains_updated_by: str | None = None
    problem: str = ""  # the stored values do not fit the file any more (shown, not applied)
    settings: Settings | None = field(default=None, repr=False)

    def value(self, key: str) -> SettingValue:
        """The setting named ``key``."""
        return next(item for item in self.values if item.key == key)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "settings": [item.as_dict() for item in self.values],
            "delivery_domains": [domain.as_dict() for domain in self.domains],
            "problem": self.problem or None,
        }


def effective_value(settings: Settings, key: str) -> Any:
    """The value of an editable setting as ``mailhaul.toml`` would spell it."""
    if key == "sources.allowed_ports":
        return ",".join(str(port) for port in sorted(settings.sources_allowed_ports))
    if key.startswith("filter."):
        return getattr(settings.filters, key.removeprefix("filter."))
    if key.startswith("notify."):
        return getattr(settings.notify, key.removeprefix("notify."))
    if key == "web.public_url":
        return settings.web_public_url
    if key == "limits.daily_bytes_per_host":
        return settings.limits.daily_bytes.text(size=True)
    if key == "limits.connections_per_account":
        return settings.limits.connections.text()
    attribute = {
        "poll.interval": "interval",
        "poll.max_size": "max_size",
        "poll.per_host_limit": "per_host_limit",
        "poll.max_backoff": "max_backoff",
        "poll.auth_failures_to_pause": "auth_failures_to_pause",
        "runs.keep_days": "runs_keep_days",
        "push.enabled": "push_enabled",
        "sources.allow_private": "sources_allow_private",
    }[key]
    return getattr(settings, attribute)


def field_message(name: str, message: str) -> str:
    """``setting poll.interval must be positive`` → ``must be positive`` (shown beside it)."""
    message = message.removeprefix(f"setting {name} ")
    if name.startswith(DOMAIN_PREFIX):
        where = name.rpartition(".")[0] + "."  # delivery.domains."example.org".
        message = message.replace(where, "")
    return message


def split_domain_key(key: str) -> str | None:
    """``delivery.domains.example.org`` → ``example.org`` (None for other keys)."""
    if not key.startswith(DOMAIN_PREFIX):
        return None
    return key.removeprefix(DOMAIN_PREFIX).strip('"')


class SettingsAdmin:
    """Reads and changes the editable settings; changes are for admins only."""

    def __init__(
        self,
        db: Database,
        layers: SettingsLayers,
        store: StoredSettingsStore | None = None,
        on_change: Callable[[], object] | None = None,
    ) -> None:
        self.db = db
        self.layers = layers
        self.store = store or StoredSettingsStore()
        self.on_change = on_change

    # reading ---------------------------------------------------------------------------------
    def overview(self, actor: Principal) -> SettingsOverview:
        """Every editable setting with its value and source; the per-domain delivery."""
        _require_admin(actor)
        with self.db.begin() as conn:
            rows = self.store.all(conn)
        stored = {key: row.value for key, row in rows.items()}
        problem = ""
        try:
            settings = self.layers.resolve(stored)
        except InvalidSetting as exc:  # e.g. mailhaul.toml changed under a stored value
            problem = f"the settings stored in the database are not in effect: {exc}"
            settings = self.layers.resolve({})
        values = [self._value(settings, key, stored, rows.get(key)) for key in EDITABLE_SETTINGS]
        domains_row = rows.get(DOMAINS_SETTING)
        return SettingsOverview(
            values=values,
            domains=self._domains(settings, stored.get(DOMAINS_SETTING) or {}),
            domains_updated_at=domains_row.updated_at if domains_row else None,
            domains_updated_by=domains_row.updated_by if domains_row else None,
            problem=problem,
            settings=settings,
        )

    def _value(
        self, settings: Settings, key: str, stored: Mapping[str, Any], row: StoredSetting | None
    ) -> SettingValue:
        source = SOURCE_LABELS[self.layers.source_of(key, stored)]
        return SettingValue(
            key=key,
            value=effective_value(settings, key),
            source=source,
            env_var=env_name(key),
            updated_at=row.updated_at if row and source == "database" else None,
            updated_by=row.updated_by if row and source == "database" else None,
        )

    def _domains(self, settings: Settings, stored: Mapping[str, Any]) -> list[DomainDelivery]:
        in_file = self.layers.file_domains()
        result: list[DomainDelivery] = []
        for domain, delivery in sorted(settings.delivery_domains.items()):
            mine = dict(stored.get(domain) or {})
            file_table = in_file.get(domain, {})
            sources = {
                key: "database"
                if key in mine
                else (CONFIG_NAME if key in file_table else "default")
                for key in EDITABLE_DOMAIN_KEYS
            }
            result.append(
                DomainDelivery(
                    domain=domain,
                    values=_domain_values(delivery),
                    sources=sources,
                    stored=mine,
                    in_file=domain in in_file,
                    method_in_file=("" if delivery.method in EDITABLE_METHODS else delivery.method),
                )
            )
        return result

    # changing --------------------------------------------------------------------------------
    def change(self, actor: Principal, changes: Mapping[str, Any]) -> SettingsOverview:
        """Apply ``changes`` (key → value; None: back to the file's value or the default).

        ``delivery.domains`` takes ``{domain: {key: value} or None}``: each table replaces
        what the database sets for that domain, None removes it; ``delivery.domains.DOMAIN``
        names one domain. Everything is checked before anything is stored; a refusal raises
        SettingsRejected naming each bad setting.
        """
        _require_admin(actor)
        globals_, domains = self._split(changes)
        with self.db.begin() as conn:
            self.store.lock(conn)
            current = self.store.values(conn)
            proposed, errors = self._proposed(current, globals_, domains)
            if errors:
                raise SettingsRejected(errors)
            now = time.time()
            for key in [*globals_, *([DOMAINS_SETTING] if domains else [])]:
                if key not in proposed:
                    self.store.remove(conn, key)
                elif proposed[key] != current.get(key):
                    self.store.put(conn, key, proposed[key], now, actor.login)
        self._changed()
        return self.overview(actor)

    def unset(self, actor: Principal, key: str) -> bool:
        """Forget the stored value of ``key`` without checking the rest (repairs a value that
        no longer fits ``mailhaul.toml``); whether one was stored."""
        _require_admin(actor)
        domain = split_domain_key(key)
        with self.db.begin() as conn:
            self.store.lock(conn)
            if domain is None:
                if key not in EDITABLE_SETTINGS and key != DOMAINS_SETTING:
                    raise SettingsRejected({key: "is not a setting that can be changed here"})
                removed = self.store.remove(conn, key)
            else:
                rows = self.store.all(conn)
                row = rows.get(DOMAINS_SETTING)
                tables = dict(row.value) if row and isinstance(row.value, dict) else {}
                removed = tables.pop(domain.lower(), None) is not None
                if not tables:
                    self.store.remove(conn, DOMAINS_SETTING)
                elif removed:
                    self.store.put(conn, DOMAINS_SETTING, tables, time.time(), actor.login)
        if removed:
            self._changed()
        return removed

    def _changed(self) -> None:
        """Apply the stored change in this process now (others pick it up within seconds)."""
        if self.on_change is None:
            return
        try:
            self.on_change()
        except MailhaulError as exc:  # stored, but this process keeps what it had
            logger.error("the changed settings cannot be applied: %s", exc)

    def _split(self, changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(global settings, {domain: table or None}); refuses unknown and environment keys."""
        globals_: dict[str, Any] = {}
        domains: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for key, value in changes.items():
            domain = split_domain_key(key)
            if key == DOMAINS_SETTING:
                if not isinstance(value, dict):
                    errors[key] = "must map domain names to tables of settings (or null)"
                else:
                    domains.update(value)
            elif domain is not None:
                domains[domain] = value
            elif key not in EDITABLE_SETTINGS:
                errors[key] = "is not a setting that can be changed here"
            elif self.layers.source_of(key) in ("flag", "environment"):
                errors[key] = (
                    f"is set by the environment ({env_name(key)} or a command-line flag) and "
                    "cannot be changed here"
                )
            else:
                globals_[key] = value
        if errors:
            raise SettingsRejected(errors)
        return globals_, domains

    def _proposed(
        self, current: Mapping[str, Any], globals_: Mapping[str, Any], domains: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The stored values after the changes, and the errors (setting → message)."""
        errors: dict[str, str] = {}
        proposed = dict(current)
        for key, value in globals_.items():
            candidate = dict(current)
            try:
                if value is None:
                    candidate.pop(key, None)
                else:
                    candidate[key] = canonical_setting(key, value)
                self.layers.resolve(candidate)  # this change alone
            except InvalidSetting as exc:
                errors[key] = field_message(exc.name, str(exc))
                continue
            proposed.pop(key, None)
            if key in candidate:
                proposed[key] = candidate[key]
        tables = dict(current.get(DOMAINS_SETTING) or {})
        for raw_domain, table in domains.items():
            try:
                domain = normalise_domain(raw_domain)
                if table is None or table == {}:
                    tables.pop(domain, None)
                    continue
                one = canonical_setting(DOMAINS_SETTING, {domain: table})
                candidate = {**current, DOMAINS_SETTING: {**tables, **one}}
                self.layers.resolve(candidate)
                tables.update(one)
            except InvalidSetting as exc:
                errors[exc.name] = field_message(exc.name, str(exc))
        if domains:
            proposed.pop(DOMAINS_SETTING, None)
            if tables:
                proposed[DOMAINS_SETTING] = tables
        if not errors:
            try:  # everything together
                self.layers.resolve(proposed)
            except InvalidSetting as exc:
                errors[exc.name] = field_message(exc.name, str(exc))
        return proposed, errors


def _require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise Forbidden("only an admin may see and change the settings")


def _domain_values(delivery: DeliverySettings) -> dict[str, Any]:
    return {key: getattr(delivery, key) for key in EDITABLE_DOMAIN_KEYS}


__all__ = [
    "DomainDelivery",
    "SettingValue",
    "SettingsAdmin",
    "SettingsOverview",
    "SettingsRejected",
]
