"""Issue 18: who asked for a "fetch now" (web, cli, api, cron), so the run the scheduler
starts for it records that trigger instead of ``schedule``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("fetch_requested_by", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("fetch_requested_by")
