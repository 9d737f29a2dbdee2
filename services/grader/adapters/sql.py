"""The grader's SQL store (``StateStore``): checkpoints, policy versions and the audit log.

Tables (created by ``services/grader/migrations``; the ``Table`` objects here mirror them):

- ``grader_state``: one row, the last checkpoint (engine state blob, the policy it was graded under, the command
  outputs still to publish, when);
- ``grader_offsets``: ``(topic, kafka_partition) -> next_offset`` of that checkpoint, for the posts topic (where to
  resume) and the alerts topic (where a recovery scans for alerts already emitted). Keyed by topic name, so
  pointing the grader at another topic starts it from that topic's beginning instead of misusing offsets;
- ``grader_policies``: every policy version ever activated, with its YAML, who activated it and when;
- ``grader_order_log``: the order (runs of partition offsets) in which batches fed the engine since the last
  checkpoint (``OrderLog``), which a recovery follows; every checkpoint empties it in its transaction;
- ``audit_log``/``audit_head``: the shared hash-chained audit log (``qingfeng.storage.append_audit``).

A checkpoint, the policy it activates and the audit records of the command behind it are written in one
transaction: a policy change is either active, audited and reflected in the stored state, or none of these.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from qingfeng.storage import append_audit, session_factory
from qingfeng.v1 import event_pb2
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.grader.ports import AuditEntry, Checkpoint, CheckpointInfo, Outputs, PolicyRecord

__all__ = ["SqlStateStore", "decode_pending", "encode_pending"]

_ROW: Final = "grader"

_metadata = MetaData()
_state = Table(
    "grader_state",
    _metadata,
    Column("name", String(64), primary_key=True),
    Column("state", LargeBinary(), nullable=False),
    Column("policy_version", String(255), nullable=False),
    Column("pending", LargeBinary(), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    Column("generation", BigInteger(), nullable=False, server_default="0"),
)
_offsets = Table(
    "grader_offsets",
    _metadata,
    Column("topic", String(255), primary_key=True),
    Column("kafka_partition", Integer(), primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger(), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)
_order = Table(
    "grader_order_log",
    _metadata,
    Column("seq", Integer(), primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("runs", Text(), nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
)
_policies = Table(
    "grader_policies",
    _metadata,
    Column("version", String(255), primary_key=True),
    Column("yaml", Text(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("scheme", String(32), nullable=False),
    Column("active", Boolean(), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("activated_by", String(255), nullable=False),
    Column("agency", String(100), nullable=True),
)


def encode_pending(outputs: Outputs) -> bytes:
    """Command outputs awaiting publication, as JSON lists of base64 protobuf payloads."""
    doc = {
        "alerts": [base64.b64encode(a.SerializeToString()).decode("ascii") for a in outputs.alerts],
        "events": [base64.b64encode(e.SerializeToString()).decode("ascii") for e in outputs.events],
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def decode_pending(blob: bytes) -> Outputs:
    doc = json.loads(blob) if blob else {}
    return Outputs(
        tuple(event_pb2.Alert.FromString(base64.b64decode(a)) for a in doc.get("alerts", ())),
        tuple(event_pb2.Event.FromString(base64.b64decode(e)) for e in doc.get("events", ())),
    )


def _utc(at: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class SqlStateStore:
    """``StateStore`` over an async SQLAlchemy engine, for one posts topic and one alerts topic."""

    def __init__(self, engine: AsyncEngine, *, posts_topic: str, alerts_topic: str) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)
        self._posts_topic = posts_topic
        self._alerts_topic = alerts_topic

    async def load(self) -> Checkpoint | None:
        async with self._sessions() as session:
            row = (await session.execute(select(_state).where(_state.c.name == _ROW))).one_or_none()
            if row is None:
                return None
            offsets = (
                await session.execute(
                    select(_offsets).where(_offsets.c.topic.in_([self._posts_topic, self._alerts_topic]))
                )
            ).all()
        positions = {int(o.kafka_partition): int(o.next_offset) for o in offsets if o.topic == self._posts_topic}
        alerts = {int(o.kafka_partition): int(o.next_offset) for o in offsets if o.topic == self._alerts_topic}
        return Checkpoint(
            positions=positions,
            alert_offsets=alerts,
            state=bytes(row.state),
            policy_version=row.policy_version,
            saved_at=_utc(row.saved_at),
            pending=decode_pending(bytes(row.pending)),
            generation=int(row.generation),
        )

    async def checkpoint_info(self) -> CheckpointInfo | None:
        """The last checkpoint's positions and generation (a standby polls it: the state blob is not read)."""
        query = select(_state.c.generation, _state.c.saved_at).where(_state.c.name == _ROW)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
            if row is None:
                return None
            offsets = (await conn.execute(select(_offsets).where(_offsets.c.topic == self._posts_topic))).all()
        positions = {int(o.kafka_partition): int(o.next_offset) for o in offsets}
        return CheckpointInfo(positions=positions, generation=int(row.generation), saved_at=_utc(row.saved_at))

    async def save(
        self, checkpoint: Checkpoint | None, *, policy: PolicyRecord | None = None, audit: Sequence[AuditEntry] = ()
    ) -> None:
        """Store the checkpoint (when given), activate ``policy`` and append ``audit``, all in one transaction."""
        async with self._sessions() as session, session.begin():
            if checkpoint is not None:
                await self._write_checkpoint(session, checkpoint)
            if policy is not None:
                await self._activate(session, policy)
            for entry in audit:
                await append_audit(
                    session,
                    actor=entry.actor,
                    agency=entry.agency,
                    action=entry.action,
                    target=entry.target,
                    details=dict(entry.details),
                )

    async def log_order(self, runs: Sequence[tuple[int, int, int]], at: datetime) -> None:
        """Append one batch's order: ``(partition, first offset, count)`` runs in the order they were fed."""
        # Once per batch: a Core connection, not an ORM session (whose bookkeeping cost more than the insert).
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(_order).values(topic=self._posts_topic, runs=json.dumps([list(r) for r in runs]), logged_at=at)
            )

    async def order_log(self) -> list[tuple[int, int, int]]:
        """Every run logged since the last checkpoint, oldest first (a replay may have logged runs twice)."""
        return [run for batch in await self.order_batches() for run in batch]

    async def order_batches(self) -> list[list[tuple[int, int, int]]]:
        """The runs logged since the last checkpoint, one list per batch, oldest first."""
        query = select(_order.c.runs).where(_order.c.topic == self._posts_topic).order_by(_order.c.seq)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [[(int(p), int(first), int(count)) for p, first, count in json.loads(row.runs)] for row in rows]

    async def order_mark(self) -> int:
        """The newest run's sequence number (0: none logged)."""
        query = select(func.max(_order.c.seq)).where(_order.c.topic == self._posts_topic)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def _write_checkpoint(self, session: AsyncSession, cp: Checkpoint) -> None:
        await session.execute(delete(_state).where(_state.c.name == _ROW))
        # The checkpoint reflects every batch logged up to its mark: a recovery starts from it, then follows the rest.
        covered = _order.c.topic == self._posts_topic
        if cp.order_through is not None:
            covered = covered & (_order.c.seq <= cp.order_through)
        await session.execute(delete(_order).where(covered))
        await session.execute(
            insert(_state).values(
                name=_ROW,
                state=cp.state,
                policy_version=cp.policy_version,
                pending=encode_pending(cp.pending),
                saved_at=cp.saved_at,
                generation=cp.generation,
            )
        )
        for topic, offsets in ((self._posts_topic, cp.positions), (self._alerts_topic, cp.alert_offsets)):
            await session.execute(delete(_offsets).where(_offsets.c.topic == topic))
            rows = _offset_rows(topic, offsets, cp.saved_at)
            if rows:
                await session.execute(insert(_offsets), rows)

    async def _activate(self, session: AsyncSession, policy: PolicyRecord) -> None:
        await session.execute(update(_policies).where(_policies.c.active.is_(True)).values(active=False))
        await session.execute(
            insert(_policies).values(
                version=policy.version,
                yaml=policy.yaml,
                sha256=policy.sha256,
                scheme=policy.scheme,
                active=True,
                activated_at=policy.activated_at or datetime.now(UTC),
                activated_by=policy.activated_by,
                agency=policy.agency,
            )
        )

    async def active_policy(self) -> PolicyRecord | None:
        async with self._sessions() as session:
            row = (await session.execute(select(_policies).where(_policies.c.active.is_(True)))).first()
        return _policy(row) if row is not None else None

    async def policy(self, version: str) -> PolicyRecord | None:
        async with self._sessions() as session:
            row = (await session.execute(select(_policies).where(_policies.c.version == version))).one_or_none()
        return _policy(row) if row is not None else None


def _offset_rows(topic: str, offsets: Mapping[int, int], at: datetime) -> list[dict[str, object]]:
    return [
        {"topic": topic, "kafka_partition": p, "next_offset": o, "saved_at": at} for p, o in sorted(offsets.items())
    ]


def _policy(row: Row[Any]) -> PolicyRecord:
    return PolicyRecord(
        version=row.version,
        yaml=row.yaml,
        sha256=row.sha256,
        scheme=row.scheme,
        activated_at=_utc(row.activated_at),
        activated_by=row.activated_by,
        agency=row.agency,
    )
