"""Issue 15: per push watch the connections its holder plans for the account, so that the
watchers and schedulers of other processes count them against the remote mailbox's cap.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("push_watches") as batch:
        batch.add_column(sa.Column("connections", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("push_watches") as batch:
        batch.drop_column("connections")
