"""Wiring: the one module that builds adapters and hands them to services."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.records import MessageRecords
from mailhaul.adapters.db.runs import RunStore
from mailhaul.adapters.private_dirs import make_private_dirs
from mailhaul.adapters.secrets import SecretBox
from mailhaul.delivery_methods import DELIVERY_METHODS
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.options import Credentials, Protocol, SourceEndpoint
from mailhaul.domain.ports import LogFn, MailSink, MailSource
from mailhaul.domain.scheduling import SchedulePolicy
from mailhaul.services.accounts import AccountService
from mailhaul.services.filtering import ScanObserver
from mailhaul.services.leases import Leases
from mailhaul.services.poll_run import PollDeps, SourceFactory
from mailhaul.services.polling import Poller
from mailhaul.settings import Settings
from mailhaul.settings_keys import DeliverySettings, InvalidSetting
from mailhaul.settings_toml import DEFAULT_TOML
from mailhaul.stage_setup import build_incident_tracker, build_notice_sender, build_scanners

if TYPE_CHECKING:
    from mailhaul.adapters.passwords import PasswordHashes
    from mailhaul.services.account_access import AccountAccess
    from mailhaul.services.incidents import Incidents
    from mailhaul.services.notices import NoticeSender
    from mailhaul.services.oauth_providers import OAuthProviderService
    from mailhaul.services.pending_connects import PendingAuthorizations, PendingConnects
    from mailhaul.services.quarantine import QuarantineAccess, QuarantineService
    from mailhaul.services.settings_admin import SettingsAdmin
    from mailhaul.services.sign_in import SignIn
    from mailhaul.services.status import StatusService
    from mailhaul.services.users import UserService


def open_source(endpoint: SourceEndpoint, credentials: Credentials, log: LogFn) -> MailSource:
    """A source adapter for the endpoint's protocol."""
    if endpoint.protocol is Protocol.POP3:
        from mailhaul.adapters.sources.pop3.source import Pop3Source

        return Pop3Source(endpoint, credentials, log)
    from mailhaul.adapters.sources.imap.source import ImapSource

    return ImapSource(endpoint, credentials, log)


def build_sink(settings: Settings) -> MailSink:
    """The delivery sink of the settings: one method, or routed per destination domain."""
    default = _sink_for(settings.delivery, settings)
    if not settings.delivery_domains:
        return default
    from mailhaul.adapters.sinks.routing import RoutingSink

    by_domain = {
        domain: _sink_for(delivery, settings)
        for domain, delivery in settings.delivery_domains.items()
    }
    return RoutingSink(default, by_domain)


def _sink_for(delivery: DeliverySettings, settings: Settings) -> MailSink:
    # The method's sink module is imported only when it is used (no SMTP code for Maildir).
    module = importlib.import_module(DELIVERY_METHODS[delivery.method].sink_module)
    builder: Callable[[DeliverySettings, Path], MailSink] = module.sink_from_settings
    return builder(delivery, settings.home)


def close_sink(sink: MailSink) -> None:
    """Close the sink's idle connections (LMTP/SMTP); never raises, even for a faulty sink."""
    with contextlib.suppress(Exception):
        sink.close()


def init_home(settings: Settings) -> list[str]:
    """Create the home, key file, settings file and database if missing; what was made."""
    made: list[str] = []
    make_private_dirs(settings.home)
    if not settings.config_file.exists():
        settings.config_file.write_text(DEFAULT_TOML)
        made.append(str(settings.config_file))
    if not settings.key_file.exists():
        SecretBox.create(settings.key_file)
        made.append(str(settings.key_file))
    db = Database(settings.database_url)
    db.create_schema()
    db.dispose()
    if db.is_sqlite:
        db_file = settings.database_url.split(":///", 1)[-1]
        if db_file and db_file != ":memory:":
            os.chmod(db_file, 0o600)  # it holds (encrypted) passwords and account data
    return made


logger = logging.getLogger(__name__)


@dataclass
class App:
    """Everything a command needs, built lazily from settings.

    ``refresh_settings()`` lays the settings an admin stored in the database over the
    fixed layers (flags, environment, mailhaul.toml) and applies what changed to what is
    already built: the source policy, the schedule policy and, when delivery changed, a new
    sink. The poller gets new ``PollDeps``; a poll in progress keeps the ones (and so the
    sink) it started with from its first receipt to its last flush, and the old sink is
    closed once no poll uses them any more. ``open_source`` connects to POP3/IMAP servers
    (the test suite gives an in-memory one).
    """

    settings: Settings
    open_source: SourceFactory = field(default=open_source, repr=False, compare=False)
    _refresh_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _settings_table: bool = field(default=False, init=False, repr=False, compare=False)
    scan_observer: ScanObserver | None = field(default=None, repr=False, compare=False)
    """Told of every scanner call (`serve` and `worker`: their metrics)."""

    def observe_scans(self, observer: ScanObserver) -> None:
        """Tell ``observer`` about every scanner call from now on."""
        self.scan_observer = observer
        poller: Poller | None = self.__dict__.get("poller")
        if poller is not None:
            poller.deps = replace(poller.deps, filters=build_scanners(self.settings, observer))

    @cached_property
    def db(self) -> Database:
        """The database."""
        return Database(self.settings.database_url)

    @cached_property
    def secret_box(self) -> SecretBox:
        """The password encryption keys."""
        return SecretBox(self.settings.key_file)

    @cached_property
    def account_store(self) -> AccountStore:
        """Account rows."""
        return AccountStore()

    @cached_property
    def run_store(self) -> RunStore:
        """Run rows."""
        return RunStore()

    @cached_property
    def accounts(self) -> AccountService:
        """Account use cases."""
        service = AccountService(self.db, self.account_store, self.run_store, self.secret_box)
        service.scanners = lambda: (
            bool(self.settings.filters.rspamd or self.settings.filters.spamd),
            bool(self.settings.filters.clamd),
        )
        service.files_folders = lambda destination: self.sink.files_folders(destination)
        return service

    @cached_property
    def oauth_providers(self) -> OAuthProviderService:
        """The OAuth2 providers an admin registers (Authlib and httpx: imported when used)."""
        from mailhaul.adapters.db.oauth_providers import OAuthProviderStore
        from mailhaul.services.oauth_providers import OAuthProviderService

        return OAuthProviderService(self.db, OAuthProviderStore(), self.secret_box)

    @cached_property
    def sign_in(self) -> SignIn:
        """Credentials for polls: passwords, or OAuth2 access tokens kept fresh."""
        from mailhaul.services.sign_in import SignIn

        return SignIn(self.db, self.secret_box, lambda pid: self.oauth_providers.endpoint(pid))

    @cached_property
    def pending_connects(self) -> PendingConnects:
        """Device-flow connections the web UI and the API started, waiting for approval."""
        from mailhaul.services.pending_connects import PendingConnects

        return PendingConnects(self.sign_in)

    @cached_property
    def pending_authorizations(self) -> PendingAuthorizations:
        """Consents the web UI sent users to, until their callback."""
        from mailhaul.services.pending_connects import PendingAuthorizations

        return PendingAuthorizations()

    @cached_property
    def password_hashes(self) -> PasswordHashes:
        """argon2id hashes of the management users' passwords."""
        from mailhaul.adapters.passwords import PasswordHashes

        return PasswordHashes()

    @cached_property
    def users(self) -> UserService:
        """Management users, sessions and API keys."""
        from mailhaul.services.users import UserService

        return UserService(
            self.db,
            hashes=self.password_hashes,
            session_ttl=self.settings.web_session_hours * 3600.0,
        )

    @cached_property
    def status(self) -> StatusService:
        """Read-only status of the service and its accounts."""
        from mailhaul.services.status import StatusService

        return StatusService(self.db)

    @cached_property
    def account_access(self) -> AccountAccess:
        """Account use cases scoped to a principal (web UI, API)."""
        from mailhaul.domain.source_policy import SourcePolicy
        from mailhaul.services.account_access import AccountAccess, SourceConnector

        policy = SourcePolicy(
            allow_private=self.settings.sources_allow_private,
            allowed_ports=self.settings.sources_allowed_ports,
        )
        connector = SourceConnector(open_source, self.settings.timeout)
        return AccountAccess(self.accounts, self.status, policy, connector)

    @cached_property
    def sink(self) -> MailSink:
        """The local delivery sink (settings ``delivery.*``)."""
        return build_sink(self.settings)

    @cached_property
    def settings_admin(self) -> SettingsAdmin:
        """The settings an admin edits (stored in the database)."""
        from mailhaul.services.settings_admin import SettingsAdmin

        if self.settings.layers is None:
            raise ConfigError("these settings were not read from their layers")
        return SettingsAdmin(self.db, self.settings.layers, on_change=self.refresh_settings)

    def refresh_settings(self) -> bool:
        """Apply the database's settings if they changed since the last look; whether they did.

        Raises ConfigError (and keeps the settings in force) when the stored values do not
        fit the other layers, or the new delivery cannot be built.
        """
        layers = self.settings.layers
        if layers is None:  # made by hand (tests): there is nothing to lay over
            return False
        from mailhaul.adapters.db.stored_settings import StoredSettingsStore

        store = StoredSettingsStore()
        with self.db.begin() as conn:
            if not self._settings_table and not store.exists(conn):
                return False  # an older schema (`mailhaul db upgrade` adds it): none stored
            self._settings_table = True
            stored = store.values(conn)
        with self._refresh_lock:
            old = self.settings
            if stored == old.stored:
                return False
            try:
                new = layers.resolve(stored)
            except InvalidSetting as exc:
                raise ConfigError(
                    f"the settings stored in the database do not fit: {exc} (change it in the "
                    f"web UI, or `mailhaul settings unset {exc.name}`)"
                ) from exc
            self._apply(old, new)
        return True

    def _apply(self, old: Settings, new: Settings) -> None:
        """Switch to ``new``: every part built from ``old`` that depends on what changed."""
        built = self.__dict__
        delivery_changed = (old.delivery, old.delivery_domains) != (
            new.delivery,
            new.delivery_domains,
        )
        new_sink = build_sink(new) if delivery_changed and "sink" in built else None
        self.settings = new
        if (old.notify, old.web_public_url) != (new.notify, new.web_public_url):
            built.pop("notice_sender", None)  # the next round of notices takes the new ones
        access = built.get("account_access")
        if access is not None:
            from mailhaul.domain.source_policy import SourcePolicy

            access.policy = SourcePolicy(
                allow_private=new.sources_allow_private, allowed_ports=new.sources_allowed_ports
            )
        poller: Poller | None = built.get("poller")
        if new_sink is not None:
            old_sink: MailSink = built["sink"]
            built["sink"] = new_sink
            if poller is None:
                close_sink(old_sink)
            else:
                old_deps = poller.deps
                policy = _schedule_policy(old_deps.policy, new)
                poller.deps = replace(
                    old_deps,
                    sink=new_sink,
                    policy=policy,
                    filters=build_scanners(new, self.scan_observer),
                    incidents=build_incident_tracker(new),
                    limits=new.limits,
                )
                # Polls still running on the old deps keep the old sink until they end.
                weakref.finalize(old_deps, close_sink, old_sink)
        elif poller is not None:
            poller.deps = replace(
                poller.deps,
                policy=_schedule_policy(poller.policy, new),
                filters=build_scanners(new, self.scan_observer),
                incidents=build_incident_tracker(new),
                limits=new.limits,
            )
        logger.info("settings from the database applied")

    @cached_property
    def quarantine(self) -> QuarantineService:
        """Infected messages kept out of mailboxes: list, release, delete."""
        from mailhaul.adapters.quarantine import QuarantineBox
        from mailhaul.services.quarantine import QuarantineService

        box = QuarantineBox(self.settings.home / "quarantine")
        return QuarantineService(self.db, self.account_store, box, lambda: self.sink)

    @cached_property
    def incidents(self) -> Incidents:
        """Incidents (accounts' trouble) and the notices they caused."""
        from mailhaul.adapters.db.incidents import IncidentStore
        from mailhaul.services.incidents import Incidents

        return Incidents(self.db, IncidentStore())

    @cached_property
    def notice_sender(self) -> NoticeSender:
        """Delivers queued notices (the running service's thread, the end of `fetch`)."""
        return build_notice_sender(self.db, self.account_store, lambda: self.sink, self.settings)

    @cached_property
    def quarantine_access(self) -> QuarantineAccess:
        """The quarantine as the web UI and the API reach it (scoped by account)."""
        from mailhaul.services.quarantine import QuarantineAccess

        return QuarantineAccess(self.quarantine, self.account_access)

    @cached_property
    def poller(self) -> Poller:
        """Polls accounts."""
        deps = PollDeps(
            db=self.db,
            accounts=self.account_store,
            records=MessageRecords(),
            runs=self.run_store,
            sign_in=self.sign_in,
            sink=self.sink,
            open_source=self.open_source,
            timeout=self.settings.timeout,
            leases=Leases(self.db, self.account_store, ttl=float(self.settings.lease_ttl)),
            stall_timeout=self.settings.stall_timeout,
            filters=build_scanners(self.settings, self.scan_observer),
            incidents=build_incident_tracker(self.settings),
            limits=self.settings.limits,
            policy=SchedulePolicy(
                max_backoff=float(self.settings.max_backoff),
                auth_failures_to_pause=self.settings.auth_failures_to_pause,
            ),
        )
        return Poller(deps)


def _schedule_policy(policy: SchedulePolicy, settings: Settings) -> SchedulePolicy:
    """``policy`` with the settings' backoff cap and login failures before a pause."""
    return replace(
        policy,
        max_backoff=float(settings.max_backoff),
        auth_failures_to_pause=settings.auth_failures_to_pause,
    )
