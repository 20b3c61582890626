"""The run's optional stages, built from their settings: the filter stage's scanners
(``[filter]``) and the incident tracker (``[notify]``). Wiring, like ``delivery_methods``:
only bootstrap uses it."""

from __future__ import annotations

from mailhaul.adapters.db.incidents import IncidentStore
from mailhaul.adapters.db.users import UserStore
from mailhaul.adapters.quarantine import QuarantineBox
from mailhaul.domain.filtering import scanner_failure
from mailhaul.domain.incidents import NoticePolicy
from mailhaul.services.filtering import Scanners, ScanObserver, SpamScanner, VirusScanner
from mailhaul.services.incidents import IncidentTracker
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
    if not notify.mailbox:
        return None
    policy = NoticePolicy(notify.after_failures, notify.after_minutes, notify.admins)
    return IncidentTracker(IncidentStore(), UserStore(), policy)
