"""Issue 16: per account its folder rules (every folder, include/exclude patterns, where
each folder's mail lands), as JSON; NULL takes the defaults.

Remote folders now land in the local folders of the same name where the delivery files
into folders. Accounts that already fetched folders besides INBOX keep landing all their
mail in the mailbox itself: each such folder is mapped to it (``--map Sent=``), which the
user can change.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("rules", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, folders FROM accounts")).fetchall()
    for account_id, folders in rows:
        others = [name for name in json.loads(folders or "[]") if name.upper() != "INBOX"]
        if not others:
            continue
        rules = {"map": [[name, ""] for name in others]}
        conn.execute(
            sa.text("UPDATE accounts SET rules = :rules WHERE id = :id"),
            {"rules": json.dumps(rules), "id": account_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("rules")
