"""The website feed's entries (the feed channel's store, ``services/publisher/channels/feed_sql.py``).

Revision ID: 0003
Revises: 0002
"""

from services.publisher.channels.feed_sql import create_feed_table, drop_feed_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_feed_table()


def downgrade() -> None:
    drop_feed_table()
