"""Issue 14: spam and virus checks. Per account the checks asked for, per run what they
found, and the quarantine's list of infected messages.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("antispam", sa.String(length=8), nullable=False, server_default="off")
        )
        batch.add_column(
            sa.Column("antivirus", sa.String(length=16), nullable=False, server_default="off")
        )
    with op.batch_alter_table("runs") as batch:
        for name in ("spam", "viruses", "unscanned"):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("uid", sa.String(length=200), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("scanner", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False, server_default=""),
        sa.Column("subject", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_quarantine_account", "quarantine", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_account", table_name="quarantine")
    op.drop_table("quarantine")
    with op.batch_alter_table("runs") as batch:
        for name in ("unscanned", "viruses", "spam"):
            batch.drop_column(name)
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("antivirus")
        batch.drop_column("antispam")
