"""Console sessions shared by every gateway replica (gateway/session_rows.py).

The row is keyed by the SHA-256 of the session id, never the id itself; the identity's bearer token is sealed with a
key derived from the id (AES-GCM), so reading the table yields neither a live cookie nor a token.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("sealed_token", sa.LargeBinary(), nullable=False),
        sa.Column("identity_name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_gateway_sessions_token", "gateway_sessions", ["token_sha256"])
    op.create_index("ix_gateway_sessions_last_seen", "gateway_sessions", ["last_seen_at"])


def downgrade() -> None:
    op.drop_table("gateway_sessions")
