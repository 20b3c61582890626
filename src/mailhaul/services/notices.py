"""Sending the notices runs queued: into each recipient's own mailbox, through mailhaul's
delivery (Maildir, LMTP, …), with the discipline mail has: record a receipt, deliver, mark
sent. A crash in between is resolved by the receipt (Maildir: ``was_delivered``) or, for a
hand-off, by sending again (the one duplicate window, as for mail).

Notices due for one recipient at once go out as one **digest** (fifty failing accounts of
one person: one message). A running service lets new notices settle a minute first, so the
notices of one burst of failures meet in one digest; ``mailhaul fetch`` sends what its own
runs queued when it ends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from itertools import groupby

from sqlalchemy import Connection

from mailhaul.adapters.db.accounts import AccountStore
from mailhaul.adapters.db.database import Database
from mailhaul.adapters.db.incidents import IncidentStore, Notice
from mailhaul.adapters.webhook import Webhook
from mailhaul.domain.access import domain_of
from mailhaul.domain.errors import MailhaulError, TemporaryDeliveryError
from mailhaul.domain.incidents import AccountLine, Told, digest_text, notice_text
from mailhaul.domain.ports import DeliverySession, MailSink
from mailhaul.services.whole_delivery import deliver_whole

logger = logging.getLogger(__name__)

SEND_BATCH = 200  # notices one call looks at, at most
MAX_BACKOFF = 3600.0
SERVICE_SETTLE = 60.0  # seconds a new notice waits in a running service (for a digest)


class NoticeSender:
    """Delivers queued notices (``send_due``: the service's heartbeat, the end of fetch)."""

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
        self.webhook: Webhook | None = None  # bootstrap sets it from notify.webhook

    def send_due(self, now: float | None = None, settle: float = 0.0) -> int:
        """Send the notices that are due, one message per recipient and event; how many
        messages were delivered. ``settle``: leave notices younger than this for later."""
        now = time.time() if now is None else now
        with self.db.begin() as conn:
            due = self.store.due_notices(conn, now, SEND_BATCH, settle)
        sent = 0
        key = lambda n: (n.channel, n.recipient, n.event, n.id if n.channel == "webhook" else 0)  # noqa: E731
        for _, grouped in groupby(sorted(due, key=key), key=key):
            group = list(grouped)
            try:
                if group[0].channel == "webhook":
                    sent += self._post(group[0], now)
                else:
                    sent += self._send(group, now)
            except MailhaulError as exc:
                first = group[0]
                delay = min(MAX_BACKOFF, 60.0 * 2 ** min(first.attempts, 10))
                logger.warning("notice to %s: %s; retried later", first.recipient, exc)
                with self.db.begin() as conn:
                    for notice in group:
                        self.store.retry_later(conn, notice, now + delay, str(exc))
        return sent

    def _send(self, group: list[Notice], now: float) -> int:
        recipient = group[0].recipient
        session = self._sink().open_session("notices")
        try:
            done = [n for n in group if self._arrived(session, n)]
            if done:  # a crash came after these were delivered: only mark them
                with self.db.begin() as conn:
                    for notice in done:
                        self.store.sent(conn, notice.id, now)
                group = [n for n in group if n not in done]
                if not group:
                    return 0
            with self.db.begin() as conn:
                told = [self._told(conn, notice) for notice in group]
                receipt = session.planned_receipt(recipient, str(group[0].id))
                for notice in group:
                    self.store.sending(conn, notice.id, receipt)
            deliver_whole(session, recipient, receipt, [self.message(recipient, group[0], told)])
            session.flush()
        finally:
            session.close()
        with self.db.begin() as conn:
            for notice in group:
                self.store.sent(conn, notice.id, time.time())
        logger.info("%d notice(s) (%s) sent to %s", len(group), group[0].event, recipient)
        return 1

    def _post(self, notice: Notice, now: float) -> int:
        """One event to the webhook (a hand-off: a crash after the receiver's 2xx and
        before the mark posts it again, with the same ``X-Mailhaul-Delivery``)."""
        if self.webhook is None:
            raise TemporaryDeliveryError("notify.webhook is not set any more")
        with self.db.begin() as conn:
            told = self._told(conn, notice)
            incident = self.store.incident(conn, notice.incident_id)
            self.store.sending(conn, notice.id, None)
        account = told.account
        body = {
            "event": str(notice.event),
            "delivery": str(notice.id),
            "incident": {
                "id": incident.id,
                "kind": str(incident.kind),
                "since": incident.opened_at,
                "failures": incident.failures,
                "reason": incident.reason,
                "open": incident.open,
            },
            "account": {
                "id": account.id,
                "source": account.source,
                "destination": account.destination,
                "page": account.page or None,
            },
        }
        data = json.dumps(body, sort_keys=True).encode()
        self.webhook.post(str(notice.event), str(notice.id), data)
        with self.db.begin() as conn:
            self.store.sent(conn, notice.id, time.time())
        logger.info("notice %s (%s) posted to the webhook", notice.id, notice.event)
        return 1

    @staticmethod
    def _arrived(session: DeliverySession, notice: Notice) -> bool:
        if notice.state != "sending" or notice.receipt is None:
            return False
        return bool(session.was_delivered(notice.recipient, notice.receipt))

    def _told(self, conn: Connection, notice: Notice) -> Told:
        incident = self.store.incident(conn, notice.incident_id)
        account = self.accounts.get(conn, incident.account_id)
        spec = account.spec
        page = f"{self.public_url}/accounts/{account.id}" if self.public_url else ""
        line = AccountLine(
            account.id, f"{spec.protocol} {spec.host} ({spec.username})", spec.destination, page
        )
        return Told(incident.kind, line, incident.reason, incident.opened_at)

    def message(self, recipient: str, first: Notice, told: list[Told]) -> bytes:
        """The notice (or the digest of several) as a plain-text message, auto-generated."""
        if len(told) == 1:
            only = told[0]
            subject, body = notice_text(
                first.event, only.kind, only.account, (only.reason, only.since)
            )
        else:
            subject, body = digest_text(first.event, told)
        message = EmailMessage(policy=SMTP)
        message["From"] = f"mailhaul <mailhaul-noreply@{domain_of(recipient)}>"
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<notice-{first.id}.{len(told)}@mailhaul.invalid>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        message["X-Mailhaul-Notice"] = str(first.event)
        message.set_content(body)
        return message.as_bytes()


class NoticeLoop:
    """Sends due notices every few seconds in a thread of its own, so that a slow mailbox
    or webhook never holds the scheduler (``serve`` and ``worker`` run one)."""

    def __init__(self, sender: Callable[[], NoticeSender], every: float = 5.0) -> None:
        self._sender = sender
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notices", daemon=True)

    def start(self) -> None:
        """Start sending."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the notice in hand (waits a little for it)."""
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        last_error = ""
        while not self._stop.wait(self._every):
            try:
                self._sender().send_due(settle=SERVICE_SETTLE)
                last_error = ""
            except MailhaulError as exc:  # the database, the settings: the next round retries
                if str(exc) != last_error:  # said once, not every few seconds
                    logger.warning("notices: %s", exc)
                last_error = str(exc)
