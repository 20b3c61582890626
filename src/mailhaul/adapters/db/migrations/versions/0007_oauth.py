"""Issue 13: OAuth2 sign-in. The providers an admin registers, and per account the sign-in
method, the provider, its tokens (encrypted) and why a sign-in is needed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_providers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=64), nullable=False, unique=True),
        sa.Column("preset", sa.String(length=16), nullable=True),
        sa.Column("grant", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=512), nullable=False),
        sa.Column("client_secret_enc", sa.Text(), nullable=False, server_default=""),
        sa.Column("authorize_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("token_url", sa.Text(), nullable=False),
        sa.Column("device_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("revoke_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("tenant", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("issuer", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column(
                "auth_method", sa.String(length=16), nullable=False, server_default="password"
            )
        )
        batch.add_column(sa.Column("oauth_provider_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("oauth_tokens_enc", sa.Text(), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("sign_in_problem", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("sign_in_problem")
        batch.drop_column("oauth_tokens_enc")
        batch.drop_column("oauth_provider_id")
        batch.drop_column("auth_method")
    op.drop_table("oauth_providers")
