"""Incidents and the notices queued about them (SQLAlchemy Core; the caller's transaction)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from mailhaul.adapters.db.tables import accounts, incidents, notices
from mailhaul.domain.incidents import CERTIFICATE, IncidentKind, NoticeEvent

RETRY_LIMIT = 20  # attempts before a notice is given up on (and logged)
WEBHOOK = "<webhook>"  # among a queue's recipients: the webhook channel


@dataclass(frozen=True)
class Incident:
    """An account's trouble, from its first failing run to its next good one."""

    id: int
    account_id: int
    kind: IncidentKind
    opened_at: float
    closed_at: float | None
    failures: int
    reason: str
    notified_at: float | None
    owner: str = ""

    @property
    def open(self) -> bool:
        """Whether the account still fails."""
        return self.closed_at is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "owner": self.owner,
            "kind": str(self.kind),
            "open": self.open,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "failures": self.failures,
            "reason": self.reason,
            "notified_at": self.notified_at,
        }


@dataclass(frozen=True)
class Notice:
    """One notice to one recipient."""

    id: int
    incident_id: int
    event: NoticeEvent
    recipient: str
    state: str
    receipt: str | None
    attempts: int
    channel: str = "mailbox"  # or "webhook"


def _incident(row: Any) -> Incident:
    return Incident(
        id=row.id,
        account_id=row.account_id,
        kind=IncidentKind(row.kind),
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        failures=row.failures,
        reason=row.reason,
        notified_at=row.notified_at,
        owner=row._mapping.get("owner", ""),
    )


class IncidentStore:
    """Incident and notice rows."""

    def open_of(
        self, conn: Connection, account_id: int, certificate: bool = False
    ) -> Incident | None:
        """The account's open incident about its runs (``certificate``: about its server's
        certificate), if any."""
        kinds = [str(kind) for kind in CERTIFICATE]
        about = incidents.c.kind.in_(kinds) if certificate else incidents.c.kind.not_in(kinds)
        row = conn.execute(
            select(incidents).where(
                incidents.c.account_id == account_id, incidents.c.closed_at.is_(None), about
            )
        ).first()
        return None if row is None else _incident(row)

    def open(
        self, conn: Connection, account_id: int, kind: IncidentKind, now: float, reason: str
    ) -> Incident:
        """Open an incident at the account's first failing run."""
        result = conn.execute(
            insert(incidents).values(
                account_id=account_id, kind=str(kind), opened_at=now, failures=1, reason=reason
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return Incident(int(key[0]), account_id, kind, now, None, 1, reason, None)

    def failed_again(
        self, conn: Connection, incident: Incident, kind: IncidentKind, reason: str
    ) -> Incident:
        """One more failing run of an open incident (its kind may have grown worse)."""
        conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id)
            .values(kind=str(kind), reason=reason, failures=incidents.c.failures + 1)
        )
        return Incident(
            incident.id,
            incident.account_id,
            kind,
            incident.opened_at,
            None,
            incident.failures + 1,
            reason,
            incident.notified_at,
        )

    def close(self, conn: Connection, incident_id: int, now: float) -> None:
        """The account works again."""
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(closed_at=now))

    def queue(
        self,
        conn: Connection,
        incident_id: int,
        event: NoticeEvent,
        recipients: Collection[str],
        now: float,
    ) -> None:
        """Queue one notice per recipient, and one for the webhook when ``recipients``
        holds ``WEBHOOK`` (and note the incident as told about)."""
        for recipient in sorted(set(recipients)):
            channel = "webhook" if recipient == WEBHOOK else "mailbox"
            conn.execute(
                insert(notices).values(
                    incident_id=incident_id,
                    event=str(event),
                    channel=channel,
                    recipient="" if channel == "webhook" else recipient,
                    state="pending",
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        if event is NoticeEvent.FAILING:
            conn.execute(
                update(incidents).where(incidents.c.id == incident_id).values(notified_at=now)
            )

    def listed(
        self,
        conn: Connection,
        account_ids: Collection[int] | None,
        open_only: bool = True,
        limit: int = 200,
    ) -> list[Incident]:
        """Incidents of these accounts (None: of all), newest first."""
        query = select(incidents, accounts.c.owner).join(
            accounts, accounts.c.id == incidents.c.account_id
        )
        if account_ids is not None:
            query = query.where(incidents.c.account_id.in_(list(account_ids)))
        if open_only:
            query = query.where(incidents.c.closed_at.is_(None))
        rows = conn.execute(query.order_by(incidents.c.id.desc()).limit(limit)).all()
        return [_incident(row) for row in rows]

    def count_open(self, conn: Connection) -> int:
        """How many incidents are open (a gauge)."""
        query = select(func.count()).select_from(incidents).where(incidents.c.closed_at.is_(None))
        return int(conn.execute(query).scalar_one())

    def incident(self, conn: Connection, incident_id: int) -> Incident:
        """One incident (the notices' sender reads it)."""
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).one()
        return _incident(row)

    # notices -------------------------------------------------------------------------------
    def due_notices(
        self, conn: Connection, now: float, limit: int, settle: float = 0.0
    ) -> list[Notice]:
        """Notices to send now: pending ones due (and at least ``settle`` seconds old), and
        ones a crash left in ``sending``."""
        rows = conn.execute(
            select(notices)
            .where(
                or_(
                    and_(
                        notices.c.state == "pending",
                        notices.c.next_attempt_at <= now,
                        notices.c.created_at <= now - settle,
                    ),
                    notices.c.state == "sending",
                )
            )
            .order_by(notices.c.id)
            .limit(limit)
        ).all()
        return [
            Notice(
                r.id,
                r.incident_id,
                NoticeEvent(r.event),
                r.recipient,
                r.state,
                r.receipt,
                r.attempts,
                r.channel,
            )
            for r in rows
        ]

    def sending(self, conn: Connection, notice_id: int, receipt: str | None) -> None:
        """About to deliver: the receipt that tells afterwards whether it arrived."""
        conn.execute(
            update(notices)
            .where(notices.c.id == notice_id)
            .values(state="sending", receipt=receipt, attempts=notices.c.attempts + 1)
        )

    def sent(self, conn: Connection, notice_id: int, now: float) -> None:
        """Delivered."""
        conn.execute(
            update(notices).where(notices.c.id == notice_id).values(state="sent", sent_at=now)
        )

    def retry_later(self, conn: Connection, notice: Notice, at: float, error: str) -> None:
        """Not delivered: try again at ``at`` (or give up after RETRY_LIMIT attempts)."""
        state = "failed" if notice.attempts + 1 >= RETRY_LIMIT else "pending"
        conn.execute(
            update(notices)
            .where(notices.c.id == notice.id)
            .values(state=state, next_attempt_at=at, last_error=error[:1000], receipt=None)
        )

    def notices_of(self, conn: Connection, incident_id: int) -> list[dict[str, Any]]:
        """An incident's notices, for its history."""
        rows = conn.execute(
            select(notices).where(notices.c.incident_id == incident_id).order_by(notices.c.id)
        ).all()
        return [
            {
                "event": r.event,
                "channel": r.channel,
                "recipient": r.recipient,
                "state": r.state,
                "attempts": r.attempts,
                "created_at": r.created_at,
                "sent_at": r.sent_at,
                "last_error": r.last_error,
            }
            for r in rows
        ]
