"""Issue 15: push (IMAP IDLE). Per account whether it is pushed (NULL: the setting
push.enabled), and per watched account the process watching it, with its state.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("push", sa.Boolean(), nullable=True))
    op.create_table(
        "push_watches",
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("lease_expires", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("events", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("push_watches")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("push")
