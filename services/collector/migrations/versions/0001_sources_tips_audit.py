"""The collector's source registry, tip registry and tamper-evident audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from qingfeng.storage import create_audit_tables, drop_audit_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collector_sources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("spec", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.LargeBinary(), nullable=False),
        sa.Column("next_fetch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_collector_sources_next_fetch_at", "collector_sources", ["next_fetch_at"])
    op.create_table(
        "collector_tips",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(255), nullable=False),
        sa.Column("agency", sa.String(100), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("origin", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.String(512), nullable=False),
        sa.Column("post", sa.LargeBinary(), nullable=False),
        sa.Column("duplicate_of", sa.String(512), nullable=False),
        sa.Column("submitter_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("principal", "idempotency_key", name="uq_collector_tips_idempotency"),
    )
    create_audit_tables()


def downgrade() -> None:
    drop_audit_tables()
    op.drop_table("collector_tips")
    op.drop_index("ix_collector_sources_next_fetch_at", table_name="collector_sources")
    op.drop_table("collector_sources")
