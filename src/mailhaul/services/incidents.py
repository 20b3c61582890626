"""Incidents and their notices: opened, told about and closed with each run's record, and
sent by the running service afterwards (nothing about a notice can stop or slow mail).

``IncidentTracker.after_run`` runs inside the transaction that records a run: the incident
opens at the first failing run, its notice is queued (one row per recipient) when it is due
(``domain/incidents.py``), and the next good run closes it and, if it was told about, queues
a recovery notice. ``NoticeSender`` delivers queued notices into the recipients' own
mailboxes through mailhaul's delivery (Maildir, LMTP, …), with the discipline mail has:
record a receipt, deliver, mark sent; a crash in between is resolved by the receipt (Maildir)
or, for a hand-off, by sending again (the one duplicate window, as for mail).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any

from sqlalchemy import Connection

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.incidents import Incident, IncidentStore, Notice
from mailhaul.adapters.db.users import UserStore
from mailhaul.domain.access import Role, domain_of
from mailhaul.domain.account import Account
from mailhaul.domain.errors import MailhaulError
from mailhaul.domain.incidents import (
    AccountLine,
    IncidentKind,
    NoticeEvent,
    NoticePolicy,
    is_due,
    notice_text,
)
from mailhaul.domain.ports import MailSink

logger = logging.getLogger(__name__)

SEND_BATCH = 20  # notices a heartbeat sends at most
MAX_BACKOFF = 3600.0


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
            if not recipients:
                logger.warning("account %s: %s, and no one to tell", account.id, end.kind)
            self.store.queue(conn, incident.id, NoticeEvent.FAILING, recipients, now)

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


class NoticeSender:
    """Delivers queued notices (the service calls ``send_due`` at its heartbeats)."""

    def __init__(
        self,
        db: Database,
        store: IncidentStore,
        accounts: AccountStore,
        sink: Callable[[], MailSink],
        public_url: str = "",
    ) -> None:
        self.db = db
        self.store = store
        self.accounts = accounts
        self._sink = sink
        self.public_url = public_url.rstrip("/")

    def send_due(self, now: float | None = None) -> int:
        """Send the notices that are due (a few at a time); how many were delivered."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            due = self.store.due_notices(conn, now, SEND_BATCH)
        sent = 0
        for notice in due:
            try:
                sent += self._send(notice, now)
            except MailhaulError as exc:
                delay = min(MAX_BACKOFF, 60.0 * 2 ** min(notice.attempts, 10))
                logger.warning(
                    "notice %s to %s: %s; retried later", notice.id, notice.recipient, exc
                )
                with self.db.begin() as conn:
                    self.store.retry_later(conn, notice, now + delay, str(exc))
        return sent

    def _send(self, notice: Notice, now: float) -> int:
        session = self._sink().open_session("notices")
        try:
            crashed = notice.state == "sending" and notice.receipt is not None
            if crashed and session.was_delivered(notice.recipient, notice.receipt or ""):
                with self.db.begin() as conn:  # a crash came after the delivery
                    self.store.sent(conn, notice.id, now)
                return 0
            with self.db.begin() as conn:
                incident = self.store.incident(conn, notice.incident_id)
                account = self.accounts.get(conn, incident.account_id)
                receipt = session.planned_receipt(notice.recipient, str(notice.id))
                self.store.sending(conn, notice.id, receipt)
            raw = self.message(notice, incident, account)
            delivery = session.begin(notice.recipient, receipt)
            try:
                delivery.write(raw)
                delivery.commit()
            except BaseException:
                delivery.abort()
                raise
            session.flush()
        finally:
            session.close()
        with self.db.begin() as conn:
            self.store.sent(conn, notice.id, time.time())
        logger.info("notice %s (%s) sent to %s", notice.id, notice.event, notice.recipient)
        return 1

    def message(self, notice: Notice, incident: Incident, account: Account) -> bytes:
        """The notice as a message (plain text, UTF-8, marked auto-generated)."""
        spec = account.spec
        page = f"{self.public_url}/accounts/{account.id}" if self.public_url else ""
        line = AccountLine(
            account.id, f"{spec.protocol} {spec.host} ({spec.username})", spec.destination, page
        )
        subject, body = notice_text(
            notice.event, incident.kind, line, (incident.reason, incident.opened_at)
        )
        message = EmailMessage(policy=SMTP)
        message["From"] = f"mailhaul <mailhaul-noreply@{domain_of(notice.recipient)}>"
        message["To"] = notice.recipient
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<notice-{notice.id}.{incident.id}@mailhaul.invalid>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        message["X-Mailhaul-Notice"] = str(notice.event)
        message.set_content(body)
        return message.as_bytes()
