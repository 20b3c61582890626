"""Incidents and their notices: opened, told about and closed with each run's record, and
sent by the running service afterwards (nothing about a notice can stop or slow mail).

``IncidentTracker.after_run`` runs inside the transaction that records a run: the incident
opens at the first failing run, its notice is queued (one row per recipient) when it is due
(``domain/incidents.py``), and the next good run closes it and, if it was told about, queues
a recovery notice. ``services/notices.py`` sends what was queued.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.incidents import WEBHOOK, Incident, IncidentStore
from mailhaul.adapters.db.users import UserStore
from mailhaul.domain.access import Role, domain_of
from mailhaul.domain.account import Account
from mailhaul.domain.incidents import (
    IncidentKind,
    NoticeEvent,
    NoticePolicy,
    cert_expiring,
    is_due,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, as incidents see it."""

    kind: IncidentKind | None  # None: the account works
    reason: str  # the run's error, scrubbed of secrets ("" when none)


class IncidentTracker:
    """Opens, tells about and closes incidents with each run's record."""

    def __init__(self, store: IncidentStore, users: UserStore, policy: NoticePolicy) -> None:
        self.store = store
        self.users = users
        self.policy = policy

    def after_run(self, conn: Connection, account: Account, end: RunEnd, now: float) -> None:
        """Bring the account's incident up to date (in the run's transaction)."""
        incident = self.store.open_of(conn, account.id)
        if end.kind is None:
            if incident is not None:
                self.store.close(conn, incident.id, now)
                if incident.notified_at is not None:
                    recipients = self.recipients(conn, account, incident.kind)
                    self.store.queue(conn, incident.id, NoticeEvent.RECOVERED, recipients, now)
            return
        if incident is None:
            incident = self.store.open(conn, account.id, end.kind, now, end.reason)
        else:
            incident = self.store.failed_again(conn, incident, end.kind, end.reason)
        due = is_due(incident.kind, incident.failures, incident.opened_at, now, self.policy)
        if incident.notified_at is None and due:
            recipients = self.recipients(conn, account, incident.kind)
            if not [r for r in recipients if r != WEBHOOK]:
                logger.warning("account %s: %s, and no one to tell", account.id, end.kind)
            self.store.queue(conn, incident.id, NoticeEvent.FAILING, recipients, now)

    def certificate(
        self, conn: Connection, account: Account, expires: float | None, now: float
    ) -> None:
        """Open (and tell about, at once) or close the incident of a server certificate
        that expires within ``cert_days``; nothing without a verified certificate."""
        expiring = cert_expiring(expires, now, self.policy)
        if expiring is None:
            return
        incident = self.store.open_of(conn, account.id, certificate=True)
        if expiring and incident is None:
            when = datetime.fromtimestamp(expires or now, UTC).strftime("%Y-%m-%d %H:%M UTC")
            reason = f"the certificate of {account.spec.host} expires {when}"
            kind = IncidentKind.CERT_EXPIRING
            incident = self.store.open(conn, account.id, kind, now, reason)
            recipients = self.recipients(conn, account, kind)
            self.store.queue(conn, incident.id, NoticeEvent.FAILING, recipients, now)
        elif not expiring and incident is not None:  # renewed
            self.store.close(conn, incident.id, now)
            recipients = self.recipients(conn, account, incident.kind)
            self.store.queue(conn, incident.id, NoticeEvent.RECOVERED, recipients, now)

    def recipients(self, conn: Connection, account: Account, kind: IncidentKind) -> list[str]:
        """Who is told: the owner (not when the owner's own mailbox is what is missing),
        and the admins of the owner's domain and all admins when the owner cannot be told
        or ``notify.admins`` asks for it. Admins are told at their login's address."""
        owner = account.spec.owner
        owner_missing = kind is IncidentKind.DESTINATION_MISSING
        found = [] if owner_missing else [owner]
        if owner_missing or self.policy.copy_admins:
            domain = domain_of(owner)
            for user in self.users.list_users(conn, roles=[Role.ADMIN, Role.DOMAIN_ADMIN]):
                reaches = user.role is Role.ADMIN or domain in user.domains
                if user.active and reaches and "@" in user.login:
                    found.append(user.login)
        if owner_missing:
            found = [r for r in found if r != account.spec.destination]
        if not self.policy.mailbox:
            found = []
        found = [r for r in found if r not in self.users.opted_out(conn, found)]
        if self.policy.webhook:
            found.append(WEBHOOK)
        return sorted(set(found))


class Incidents:
    """Incidents as people look at them (the CLI's, unscoped; the API scopes by account)."""

    def __init__(self, db: Database, store: IncidentStore) -> None:
        self.db = db
        self.store = store

    def listed(self, account_ids: Collection[int] | None, open_only: bool = True) -> list[Incident]:
        """Incidents of these accounts (None: all), newest first; only open ones by default."""
        with self.db.begin() as conn:
            return self.store.listed(conn, account_ids, open_only)

    def notices_of(self, incident_id: int) -> list[dict[str, Any]]:
        """The notices an incident caused, oldest first."""
        with self.db.begin() as conn:
            return self.store.notices_of(conn, incident_id)
