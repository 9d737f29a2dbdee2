"""The post ids the collector produced, so a restarted collector still recognises a re-delivered post (issue 13).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collector_produced",
        sa.Column("post_id", sa.String(512), primary_key=True),
        sa.Column("produced_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_collector_produced_produced_at", "collector_produced", ["produced_at"])


def downgrade() -> None:
    op.drop_index("ix_collector_produced_produced_at", "collector_produced")
    op.drop_table("collector_produced")
