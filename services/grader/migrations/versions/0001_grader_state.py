"""The grader's checkpoints (engine state + consumed offsets), policy versions and tamper-evident audit log.

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
        "grader_state",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("policy_version", sa.String(255), nullable=False),
        sa.Column("pending", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "grader_offsets",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("kafka_partition", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "grader_policies",
        sa.Column("version", sa.String(255), primary_key=True),
        sa.Column("yaml", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(255), nullable=False),
        sa.Column("agency", sa.String(100), nullable=True),
    )
    create_audit_tables()


def downgrade() -> None:
    drop_audit_tables()
    op.drop_table("grader_policies")
    op.drop_table("grader_offsets")
    op.drop_table("grader_state")
