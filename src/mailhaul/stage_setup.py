"""The run's optional stages, built from their settings: the filter stage's scanners
(``[filter]``), the incident tracker and the notice sender (``[notify]``). Wiring, like
``delivery_methods``: only bootstrap uses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.incidents import IncidentStore
from mailhaul.adapters.db.users import UserStore
from mailhaul.adapters.quarantine import QuarantineBox
from mailhaul.adapters.webhook import Webhook
from mailhaul.domain.errors import ConfigError
from mailhaul.domain.filtering import scanner_failure
from mailhaul.domain.incidents import NoticePolicy
from mailhaul.domain.ports import MailSink
from mailhaul.services.filtering import Scanners, ScanObserver, SpamScanner, VirusScanner
from mailhaul.services.incidents import IncidentTracker
from mailhaul.services.notices import NoticeSender
from mailhaul.settings import Settings


def build_scanners(settings: Settings, observer: ScanObserver | None = None) -> Scanners:
    """The filter stage's scanners from the ``[filter]`` settings (rspamd wins over spamd)."""
    config = settings.filters
    spam: SpamScanner | None = None
    virus: VirusScanner | None = None
    if config.rspamd:
        from mailhaul.adapters.scanners.rspamd import RspamdScanner

        spam = RspamdScanner(config.rspamd, config.timeout)
    elif config.spamd:
        from mailhaul.adapters.scanners.spamd import SpamdScanner

        spam = SpamdScanner(config.spamd, config.timeout)
    if config.clamd:
        from mailhaul.adapters.scanners.clamd import ClamdScanner

        virus = ClamdScanner(config.clamd, config.timeout)
    return Scanners(
        spool_dir=settings.home / "spool",
        quarantine=QuarantineBox(settings.home / "quarantine"),
        spam=spam,
        virus=virus,
        on_failure=scanner_failure(config.on_scanner_failure),
        max_size=config.max_size,
        observer=observer,
    )


def build_incident_tracker(settings: Settings) -> IncidentTracker | None:
    """Incidents with each run's record, per the ``[notify]`` settings (None: notices off)."""
    notify = settings.notify
    if not notify.mailbox and not notify.webhook:
        return None
    policy = NoticePolicy(
        notify.after_failures,
        notify.after_minutes,
        notify.admins,
        webhook=bool(notify.webhook),
        cert_days=notify.cert_days,
        mailbox=notify.mailbox,
    )
    return IncidentTracker(IncidentStore(), UserStore(), policy)


def build_webhook(settings: Settings) -> Webhook | None:
    """The ``notify.webhook`` with its signing key (ConfigError when the key file cannot be
    read); None when there is none."""
    notify = settings.notify
    if not notify.webhook:
        return None
    path = Path(notify.webhook_secret_file)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"notify.webhook_secret_file {path}: {exc.strerror or exc}") from exc
    if len(key) < 16:
        raise ConfigError(f"notify.webhook_secret_file {path}: the key is shorter than 16 bytes")
    return Webhook(notify.webhook, key)


def build_notice_sender(
    db: Database, accounts: AccountStore, sink: Callable[[], MailSink], settings: Settings
) -> NoticeSender:
    """What sends queued notices: into mailboxes through ``sink`` (or as e-mail through the
    ``notify.smtp`` relay, from the null sender), and to the webhook."""
    if settings.notify.smtp:
        from mailhaul.adapters.sinks.smtp import sink_from_settings

        relay_settings = replace(settings.delivery, smtp=settings.notify.smtp, sender="<>")
        relay: MailSink = sink_from_settings(relay_settings, settings.home)
        sink = lambda: relay  # noqa: E731
    sender = NoticeSender(db, IncidentStore(), accounts, sink, settings.web_public_url)
    sender.webhook = build_webhook(settings)
    return sender
