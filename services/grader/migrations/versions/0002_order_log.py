"""The order in which the grader fed the posts to its engine since its last checkpoint (issue 13).

On a live tail the event-time merge releases records as they arrive, so the order can differ from the order a replay
of the same partitions would produce; a recovery follows this log first, so the replay regenerates the same events
and alert ids instead of new ones. Emptied by every checkpoint.

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
        "grader_order_log",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("runs", sa.Text(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("grader_order_log")
