"""Outbox, audit log and one table of the service's own.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from qingfeng.storage import create_audit_tables, create_outbox_table, drop_audit_tables, drop_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table()
    create_audit_tables()
    op.create_table(
        "example_case",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("example_case")
    drop_audit_tables()
    drop_outbox_table()
