"""The posts the grader named for each event (cited by rapid reports) and the rapid reports' issue numbers.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coord_event_posts",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("post_ids", sa.JSON(), nullable=False),
    )
    op.create_table(
        "coord_report_issues",
        sa.Column("case_id", sa.String(80), primary_key=True),
        sa.Column("issue_number", sa.Integer(), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("coord_report_issues")
    op.drop_table("coord_event_posts")
