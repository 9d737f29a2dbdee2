"""A tamper-evident audit log: every record is chained to the one before it by a SHA-256 hash.

``hash = sha256(canonical JSON of {seq, at, actor, agency, action, target, details, prev_hash})``, where canonical
JSON has sorted keys, no spaces and UTF-8 text, and ``at`` is written as UTC with microseconds. Changing, removing or
inserting a record breaks the chain at that point, and ``verify_chain`` reports where.

Appends are serialised through a one-row table ``audit_head`` (last seq and hash). ``append_audit`` first UPDATEs
that row: on PostgreSQL the row lock makes a concurrent append wait and then read the new head; on SQLite the UPDATE
takes the database's write lock. The head also exposes truncation: a chain whose last record is not the head is
missing records. A head row is created on first use, so a fresh database needs nothing but the tables.

Tables: ``audit_tables(metadata)`` for models, ``create_audit_tables()`` in a migration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "AUDIT_HEAD_TABLE",
    "AUDIT_LOG_TABLE",
    "GENESIS_HASH",
    "AuditRecord",
    "ChainCheck",
    "append_audit",
    "audit_tables",
    "create_audit_tables",
    "drop_audit_tables",
    "read_audit",
    "record_hash",
    "verify_chain",
]

AUDIT_LOG_TABLE: Final = "audit_log"
AUDIT_HEAD_TABLE: Final = "audit_head"
# The prev_hash of the first record.
GENESIS_HASH: Final = "0" * 64
_HEAD_ID: Final = 1


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log. ``agency`` is the partner agency acting, when the actor belongs to one."""

    seq: int
    at: datetime
    actor: str
    agency: str | None
    action: str
    target: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


class ChainCheck(NamedTuple):
    """Outcome of ``verify_chain``: ``ok``, or the first seq where the chain is broken (or records are missing)."""

    ok: bool
    first_bad_seq: int | None


def _log_columns() -> list[Column[Any]]:
    return [
        Column("seq", BigInteger(), primary_key=True, autoincrement=False),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor", String(255), nullable=False),
        Column("agency", String(100), nullable=True),
        Column("action", String(100), nullable=False),
        Column("target", String(255), nullable=False),
        Column("details", JSON(), nullable=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
    ]


def _head_columns() -> list[Column[Any]]:
    return [
        Column("id", Integer(), primary_key=True, autoincrement=False),
        Column("seq", BigInteger(), nullable=False),
        Column("hash", String(64), nullable=False),
    ]


def audit_tables(metadata: MetaData) -> tuple[Table, Table]:
    """Add ``audit_log`` and ``audit_head`` to a service's ``metadata`` and return them."""
    return Table(AUDIT_LOG_TABLE, metadata, *_log_columns()), Table(AUDIT_HEAD_TABLE, metadata, *_head_columns())


_log, _head = audit_tables(MetaData())


def create_audit_tables() -> None:
    """Create the audit tables; call from a service's alembic revision ``upgrade()``."""
    from alembic import op

    op.create_table(AUDIT_LOG_TABLE, *_log_columns())
    op.create_table(AUDIT_HEAD_TABLE, *_head_columns())


def drop_audit_tables() -> None:
    """Drop the audit tables; call from a revision's ``downgrade()``."""
    from alembic import op

    op.drop_table(AUDIT_HEAD_TABLE)
    op.drop_table(AUDIT_LOG_TABLE)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _utc(at: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def record_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    agency: str | None,
    action: str,
    target: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The SHA-256 (hex) of a record's canonical JSON, which includes the previous record's hash."""
    document = {
        "seq": seq,
        "at": _utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": actor,
        "agency": agency,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(_canonical_json(document).encode("utf-8")).hexdigest()


async def append_audit(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target: str,
    agency: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """Append a record in the caller's transaction (it is kept only if that commits) and return it.

    ``details`` must be JSON (it is stored as its JSON round trip, so what is hashed is what is read back). Concurrent
    appends wait for each other until the first one's transaction ends; keep the transaction short.
    """
    if at is not None and at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    when = _utc(at or datetime.now(UTC))
    body: dict[str, Any] = json.loads(_canonical_json(dict(details or {})))
    seq, prev_hash = await _claim_next_seq(session)
    digest = record_hash(
        seq=seq, at=when, actor=actor, agency=agency, action=action, target=target, details=body, prev_hash=prev_hash
    )
    await session.execute(
        insert(_log).values(
            seq=seq,
            at=when,
            actor=actor,
            agency=agency,
            action=action,
            target=target,
            details=body,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    await session.execute(update(_head).where(_head.c.id == _HEAD_ID).values(hash=digest))
    return AuditRecord(seq, when, actor, agency, action, target, body, prev_hash, digest)


async def _claim_next_seq(session: AsyncSession) -> tuple[int, str]:
    """Lock the head, advance its seq, and return (new seq, hash of the current last record)."""
    for _ in range(2):
        bumped = await session.execute(update(_head).where(_head.c.id == _HEAD_ID).values(seq=_head.c.seq + 1))
        if _rowcount(bumped) == 1:
            row = (await session.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == _HEAD_ID))).one()
            return int(row.seq), str(row.hash)
        # First append ever. Two first appends race on the primary key: the loser waits for the winner's commit,
        # fails inside its savepoint, and its retried UPDATE then finds (and locks) the winner's row.
        try:
            async with session.begin_nested():
                await session.execute(insert(_head).values(id=_HEAD_ID, seq=0, hash=GENESIS_HASH))
        except IntegrityError:
            pass
    raise RuntimeError("audit head row vanished while appending")


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", -1))


def _to_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        at=_utc(row.at),
        actor=row.actor,
        agency=row.agency,
        action=row.action,
        target=row.target,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


async def read_audit(session: AsyncSession, *, after_seq: int = 0, limit: int = 100) -> list[AuditRecord]:
    """Records with ``seq > after_seq`` in order, at most ``limit`` (page with the last seq returned)."""
    rows = (await session.execute(select(_log).where(_log.c.seq > after_seq).order_by(_log.c.seq).limit(limit))).all()
    return [_to_record(row) for row in rows]


async def verify_chain(session: AsyncSession, *, page_size: int = 1000) -> ChainCheck:
    """Recompute the chain from the first record; report the first seq that is altered, missing or out of place.

    Records appended after the check starts are not covered (the head is read first). A chain cut short at the end
    reports the first missing seq.
    """
    head = (await session.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == _HEAD_ID))).one_or_none()
    head_seq = int(head.seq) if head is not None else 0
    expected, prev_hash = 1, GENESIS_HASH
    while expected <= head_seq:
        page = await read_audit(session, after_seq=expected - 1, limit=min(page_size, head_seq - expected + 1))
        if not page or page[0].seq != expected:
            return ChainCheck(False, expected)  # the record at ``expected`` was removed
        for record in page:
            if record.seq != expected or record.prev_hash != prev_hash or _recomputed(record) != record.hash:
                return ChainCheck(False, expected)
            prev_hash, expected = record.hash, expected + 1
    if head is not None and head.hash != prev_hash:
        return ChainCheck(False, head_seq)  # the head no longer matches its last record
    # Rows past the head were not appended by ``append_audit`` unless a commit landed since the head was read.
    stray = (
        await session.execute(select(_log.c.seq).where(_log.c.seq > head_seq).order_by(_log.c.seq).limit(1))
    ).first()
    if stray is not None:
        now_seq = (await session.execute(select(_head.c.seq).where(_head.c.id == _HEAD_ID))).scalar_one_or_none()
        if now_seq is None or int(stray.seq) > int(now_seq):
            return ChainCheck(False, int(stray.seq))
    return ChainCheck(True, None)


def _recomputed(record: AuditRecord) -> str:
    return record_hash(
        seq=record.seq,
        at=record.at,
        actor=record.actor,
        agency=record.agency,
        action=record.action,
        target=record.target,
        details=record.details,
        prev_hash=record.prev_hash,
    )
