"""Issue 16: per delivered message its Gmail X-GM-MSGID (where the server has
X-GM-EXT-1), so a message seen under several labels is delivered once per account.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("gm_msgid", sa.String(length=24), nullable=True))
    op.create_index("ix_messages_gm_msgid", "messages", ["account_id", "gm_msgid"])


def downgrade() -> None:
    op.drop_index("ix_messages_gm_msgid", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("gm_msgid")
