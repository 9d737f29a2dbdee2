"""A status column on cases. On SQLite the table is rebuilt (batch mode), which must not cascade to the notes.

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
    # Force the copy-and-swap rebuild on SQLite: it is what an ALTER that SQLite cannot do natively turns into.
    recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("example_case", recreate=recreate) as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="open"))


def downgrade() -> None:
    with op.batch_alter_table("example_case") as batch:
        batch.drop_column("status")
