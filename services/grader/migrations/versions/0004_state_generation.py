"""The checkpoint's generation: changes its state holds that no replay of the posts reproduces (issue 13).

Commands (overrides, policy changes), idle ticks and regrades move it; a warm standby that follows the leader's
order log reloads the state when it moves (``services/grader/standby.py``).

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
    with op.batch_alter_table("grader_state") as batch:
        batch.add_column(sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("grader_state") as batch:
        batch.drop_column("generation")
