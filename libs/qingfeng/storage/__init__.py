"""The SQL store every stateful service shares: engine and sessions, migrations, the outbox and the audit log.

Typical use in a service (see each module for the details)::

    engine = create_engine(settings.database)
    await run_migrations(url, Path(__file__).parent / "migrations", "alembic_version_coordinator")
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        ...  # the service's own rows
        await add_to_outbox(session, topic=..., key=case_id, event_type="case.opened", event_id=..., payload=...)
        await append_audit(session, actor=user, action="case.open", target=case_id)
"""

from qingfeng.storage.audit import (
    AuditRecord,
    ChainCheck,
    append_audit,
    audit_tables,
    create_audit_tables,
    drop_audit_tables,
    read_audit,
    verify_chain,
)
from qingfeng.storage.engine import build_engine, create_engine, is_sqlite, normalise_url, session_factory
from qingfeng.storage.migrations import (
    MigrationError,
    alembic_config,
    current_revision,
    head_revision,
    run_env,
    run_migrations,
)
from qingfeng.storage.outbox import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    OutboxRelayError,
    Send,
    add_to_outbox,
    create_outbox_table,
    drop_outbox_table,
    outbox_table,
    purge_published,
    relay_outbox,
    run_relay,
)

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "AuditRecord",
    "ChainCheck",
    "MigrationError",
    "OutboxRelayError",
    "Send",
    "add_to_outbox",
    "alembic_config",
    "append_audit",
    "audit_tables",
    "build_engine",
    "create_audit_tables",
    "create_engine",
    "create_outbox_table",
    "current_revision",
    "drop_audit_tables",
    "drop_outbox_table",
    "head_revision",
    "is_sqlite",
    "normalise_url",
    "outbox_table",
    "purge_published",
    "read_audit",
    "relay_outbox",
    "run_env",
    "run_migrations",
    "run_relay",
    "session_factory",
    "verify_chain",
]
