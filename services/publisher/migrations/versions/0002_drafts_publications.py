"""Drafts with their versions and sign-off chain, and publications (one per draft and channel).

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
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "publisher_drafts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("case_id", sa.String(128), nullable=False, index=True),
        sa.Column("event_id", sa.String(128), nullable=False),
        # The PublicationRequest it came from: at most one draft per request (NULL for drafts written by people).
        sa.Column("request_id", sa.String(128), nullable=True, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("template_id", sa.String(100), nullable=False),
        sa.Column("reply_to_post_id", sa.String(512), nullable=False),
        sa.Column("channel_ids", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        # Bumped on every change; writes compare it (optimistic concurrency).
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", ts, nullable=True),
        sa.Column("due_at", ts, nullable=True),
        sa.Column("clock_started_at", ts, nullable=True),
        sa.Column("published_at", ts, nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False, index=True),
    )
    op.create_table(
        "publisher_draft_versions",
        sa.Column("draft_id", sa.String(64), sa.ForeignKey("publisher_drafts.id"), primary_key=True),
        sa.Column("revision", sa.Integer(), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("at", ts, nullable=False),
    )
    op.create_table(
        "publisher_publications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("draft_id", sa.String(64), sa.ForeignKey("publisher_drafts.id"), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False, index=True),
        sa.Column("channel_id", sa.String(100), nullable=False),
        sa.Column("due_at", ts, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("round_start", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", ts, nullable=True),
        sa.Column("in_flight", sa.Boolean(), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("published_at", ts, nullable=True),
        sa.Column("retracted_at", ts, nullable=True),
        sa.Column("retraction_reason", sa.Text(), nullable=False),
        sa.Column("corrections", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.UniqueConstraint("draft_id", "channel_id", name="uq_publisher_publication_channel"),
    )
    op.create_index("ix_publisher_publications_due", "publisher_publications", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_publisher_publications_due", table_name="publisher_publications")
    op.drop_table("publisher_publications")
    op.drop_table("publisher_draft_versions")
    op.drop_table("publisher_drafts")
