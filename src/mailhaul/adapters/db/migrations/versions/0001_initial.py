"""The schema as of issue 4: accounts, messages, folders, runs, workers.

Homes created before migrations existed are brought to this shape and stamped 0001
(see `mailhaul.adapters.db.schema`).

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 03:45:17.608353
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("security", sa.String(length=10), nullable=False),
        sa.Column("verify_cert", sa.Boolean(), nullable=False),
        sa.Column("ca_file", sa.Text(), nullable=True),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("password_enc", sa.Text(), nullable=False),
        sa.Column("folders", sa.Text(), nullable=False),
        sa.Column("keep", sa.Boolean(), nullable=False),
        sa.Column("fetchall", sa.Boolean(), nullable=False),
        sa.Column("flush", sa.Boolean(), nullable=False),
        sa.Column("max_size", sa.BigInteger(), nullable=False),
        sa.Column("deliver_to", sa.String(length=320), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("next_poll_at", sa.Float(), nullable=True),
        sa.Column("last_run_at", sa.Float(), nullable=True),
        sa.Column("last_result", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires", sa.Float(), nullable=True),
        sa.Column("fetch_requested_at", sa.Float(), nullable=True),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_accounts_due", "accounts", ["active", "next_poll_at"], unique=False)
    op.create_index("ix_accounts_host", "accounts", ["host"], unique=False)
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "folders",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "folder"),
    )
    op.create_table(
        "messages",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("receipt", sa.String(length=255), nullable=True),
        sa.Column("destination", sa.String(length=320), nullable=False),
        sa.Column("fingerprint", sa.String(length=80), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "folder", "uidvalidity", "uid"),
    )
    op.create_index(
        "ix_messages_fingerprint", "messages", ["account_id", "folder", "fingerprint"], unique=False
    )
    op.create_index("ix_messages_state", "messages", ["account_id", "state"], unique=False)
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_account", "runs", ["account_id", "id"], unique=False)
    op.create_index("ix_runs_started", "runs", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_started", table_name="runs")
    op.drop_index("ix_runs_account", table_name="runs")
    op.drop_table("runs")
    op.drop_index("ix_messages_state", table_name="messages")
    op.drop_index("ix_messages_fingerprint", table_name="messages")
    op.drop_table("messages")
    op.drop_table("folders")
    op.drop_table("workers")
    op.drop_index("ix_accounts_host", table_name="accounts")
    op.drop_index("ix_accounts_due", table_name="accounts")
    op.drop_table("accounts")
