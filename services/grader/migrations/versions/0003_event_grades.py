"""The level history of each event (issue 10): every level change as the Alert that announced it, with its reasons.

Keyed by (event_id, sequence), so a replay after a crash writes the same rows again instead of adding some; the
grader keeps the last changes of each event (``services/grader/history.py``), also after the event left memory.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grader_event_grades",
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("sequence", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alert", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("grader_event_grades")
