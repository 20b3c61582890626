"""Issue 19: addresses in lower case, local part included (one person, one mailbox).

Accounts' owners and destinations, and users' logins, are lower-cased: ``Alice@example.org``
and ``alice@example.org`` were one person to the access rules but two Maildirs to delivery,
and a mixed-case login could not sign in (logins are looked up in lower case). Logins are
unique: when several differ only in case, the one already in lower case keeps its login (else
the oldest is lower-cased) and the others stay as they were, listed for an admin to delete.
The per-message records keep the destination they were delivered to (a Maildir sink looks
for a receipt under both spellings). Nothing is undone by a downgrade: the case is gone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

accounts = sa.table(
    "accounts",
    sa.column("id", sa.Integer()),
    sa.column("owner", sa.String()),
    sa.column("deliver_to", sa.String()),
)
users = sa.table("users", sa.column("id", sa.Integer()), sa.column("login", sa.String()))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(accounts.c.id, accounts.c.owner, accounts.c.deliver_to))
    for account_id, owner, deliver_to in rows.all():
        if owner != owner.lower() or deliver_to != deliver_to.lower():
            conn.execute(
                sa.update(accounts)
                .where(accounts.c.id == account_id)
                .values(owner=owner.lower(), deliver_to=deliver_to.lower())
            )
    taken: dict[str, int] = {}
    mixed: list[tuple[int, str]] = []
    for user_id, login in conn.execute(sa.select(users.c.id, users.c.login).order_by(users.c.id)):
        if login == login.lower():
            taken[login] = user_id
        else:
            mixed.append((user_id, login))
    for user_id, login in mixed:
        if login.lower() in taken:
            continue  # another user has this login in lower case: this one stays as it was
        taken[login.lower()] = user_id
        conn.execute(sa.update(users).where(users.c.id == user_id).values(login=login.lower()))


def downgrade() -> None:
    pass  # the original case is not kept: lower-case addresses work with the older code too
