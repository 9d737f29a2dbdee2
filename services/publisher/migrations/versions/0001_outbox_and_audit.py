"""The transactional outbox and the tamper-evident audit log of the publisher.

Revision ID: 0001
Revises:
"""

from qingfeng.storage import create_audit_tables, create_outbox_table, drop_audit_tables, drop_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table()
    create_audit_tables()


def downgrade() -> None:
    drop_audit_tables()
    drop_outbox_table()
