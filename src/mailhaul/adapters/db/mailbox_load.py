"""What other processes hold open to remote mailboxes: their polls (accounts leased by
them) and their push watches (``push_watches.connections``), for the connection cap per
remote mailbox, which counts every process's connections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, func, or_, select

from mailhaul.adapters.db.tables import accounts, push_watches

Mailbox = tuple[str, str, str]
"""(protocol, source host, user name), lower-case: the scheduler's ``MailboxKey``."""


@dataclass(frozen=True)
class MailboxLoad:
    """Connections other processes hold to each remote mailbox: polls and watches."""

    polls: Counter[Mailbox] = field(default_factory=Counter)
    watches: Counter[Mailbox] = field(default_factory=Counter)


def held_elsewhere(
    conn: Connection, mailboxes: Collection[Mailbox], worker: str, mine: Collection[int], now: float
) -> MailboxLoad:
    """The connections to ``mailboxes`` that other processes hold: a poll for each account
    leased and not among ``mine`` (this process's polls), and the connections planned by
    watch rows that ``worker`` (this process) does not hold."""
    load = MailboxLoad()
    wanted = set(mailboxes)
    if not wanted:
        return load
    c, w = accounts.c, push_watches.c
    watched_elsewhere = and_(w.account_id == c.id, w.worker_id != worker, w.lease_expires >= now)
    polling = and_(c.lease_owner.is_not(None), c.lease_expires >= now)
    query = (
        select(c.id, c.protocol, c.host, c.username, c.lease_owner, c.lease_expires, w.connections)
        .select_from(accounts.outerjoin(push_watches, watched_elsewhere))
        .where(
            func.lower(c.host).in_(sorted({host for _, host, _ in wanted})),
            or_(polling, w.connections > 0),
        )
    )
    taken = set(mine)
    for row in conn.execute(query):
        mailbox = (row.protocol.lower(), row.host.lower(), row.username.lower())
        if mailbox not in wanted:
            continue
        leased = row.lease_owner is not None and row.lease_expires >= now
        if leased and int(row.id) not in taken:
            load.polls[mailbox] += 1
        if row.connections:
            load.watches[mailbox] += int(row.connections)
    return load
