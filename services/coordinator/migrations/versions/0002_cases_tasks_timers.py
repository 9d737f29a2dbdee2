"""Cases, their event links and merge redirects, tasks, meetings, instructions, processed inputs and durable timers.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "coord_cases",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("routed_to", sa.Integer(), nullable=False),
        sa.Column("ack_deadline", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_index("ix_coord_cases_event", "coord_cases", ["event_id"])
    op.create_index("ix_coord_cases_order", "coord_cases", ["level", "ack_deadline"])
    op.create_table(
        "coord_event_links",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("case_id", sa.String(80), nullable=False),
    )
    op.create_table(
        "coord_redirects",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("merged_into", sa.String(255), nullable=False),
    )
    op.create_table(
        "coord_processed",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_table(
        "coord_tasks",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("case_id", sa.String(80), nullable=False),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_index("ix_coord_tasks_agency_due", "coord_tasks", ["agency", "due_at"])
    op.create_index("ix_coord_tasks_case", "coord_tasks", ["case_id"])
    op.create_table(
        "coord_meetings",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("convened_at", _TS, nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_table(
        "coord_instructions",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("case_id", sa.String(80), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
    )
    op.create_index("ix_coord_instructions_case", "coord_instructions", ["case_id"])
    op.create_table(
        "coord_timers",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fired_at", _TS, nullable=True),
        sa.Column("fired_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_coord_timers_due", "coord_timers", ["state", "due_at"])
    op.create_index("ix_coord_timers_target", "coord_timers", ["kind", "target"])


def downgrade() -> None:
    for table in (
        "coord_timers",
        "coord_instructions",
        "coord_meetings",
        "coord_tasks",
        "coord_processed",
        "coord_redirects",
        "coord_event_links",
        "coord_cases",
    ):
        op.drop_table(table)
