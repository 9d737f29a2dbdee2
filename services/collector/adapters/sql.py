"""The collector's SQL store: the source registry (``SourceStore``), the tip registry (``TipStore``) and the audit log.

One ``SqlStore`` over the shared kernel's engine (SQLite by default, PostgreSQL supported). Tables are created by the
revisions in ``services/collector/migrations``; the ``Table`` objects here mirror them.

A source is kept as its protobuf (the configuration, without status) plus the columns queries need (kind, paused,
next fetch time). Its fetch status is a second protobuf column written only by ``record_fetch``/``record_import``,
so an operator's UpdateSource and the scheduler's status update never overwrite each other's fields.

Every change made on behalf of a caller appends to the hash-chained audit log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from qingfeng.storage import append_audit, session_factory
from qingfeng.v1 import common_pb2, post_pb2, source_pb2
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.collector.callers import Caller
from services.collector.errors import AlreadyExists, NotFound
from services.collector.ports import FetchState, IngestSummary
from services.collector.tips import StoredTip

__all__ = ["SqlStore", "metadata", "sources_table", "tips_table"]

metadata = MetaData()

sources_table = Table(
    "collector_sources",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", Integer(), nullable=False),
    Column("paused", Boolean(), nullable=False),
    Column("builtin", Boolean(), nullable=False, default=False),
    Column("spec", LargeBinary(), nullable=False),
    Column("status", LargeBinary(), nullable=False),
    Column("next_fetch_at", DateTime(timezone=True), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

tips_table = Table(
    "collector_tips",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("principal", String(255), nullable=False),
    Column("agency", String(100), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("origin", Integer(), nullable=False),
    Column("post_id", String(512), nullable=False),
    Column("post", LargeBinary(), nullable=False),
    Column("duplicate_of", String(512), nullable=False),
    # Fernet token of the serialised TipSubmitter; never the plain text.
    Column("submitter_ciphertext", LargeBinary(), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("principal", "idempotency_key", name="uq_collector_tips_idempotency"),
)

_s = sources_table.c
_t = tips_table.c


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _spec_bytes(source: source_pb2.Source) -> bytes:
    spec = source_pb2.Source()
    spec.CopyFrom(source)
    for output_only in ("status", "created_at", "updated_at"):
        spec.ClearField(output_only)
    return spec.SerializeToString()


def _to_source(row: Any) -> source_pb2.Source:
    source = source_pb2.Source.FromString(row.spec)
    source.paused = bool(row.paused)
    source.status.CopyFrom(source_pb2.SourceStatus.FromString(row.status))
    if row.next_fetch_at is not None and not row.paused:
        source.status.next_fetch_at.FromDatetime(_utc(row.next_fetch_at))
    else:
        source.status.ClearField("next_fetch_at")
    source.created_at.FromDatetime(_utc(row.created_at))
    source.updated_at.FromDatetime(_utc(row.updated_at))
    return source


class SqlStore:
    """Source registry, tip registry and audit log over one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    # -- sources ----------------------------------------------------------------------------------------------

    async def ensure_builtin(self, sources: tuple[source_pb2.Source, ...], now: datetime) -> None:
        """Create the built-in sources that are missing (at start; idempotent)."""
        async with self._sessions() as session, session.begin():
            for source in sources:
                exists = await session.scalar(select(_s.id).where(_s.id == source.id))
                if exists is None:
                    await session.execute(insert(sources_table).values(**self._row(source, now, builtin=True)))

    def _row(self, source: source_pb2.Source, now: datetime, *, builtin: bool = False) -> dict[str, Any]:
        return {
            "id": source.id,
            "kind": int(source.kind),
            "paused": source.paused,
            "builtin": builtin,
            "spec": _spec_bytes(source),
            "status": b"",
            "next_fetch_at": None if source.paused else now,
            "created_at": now,
            "updated_at": now,
        }

    async def create_source(self, source: source_pb2.Source, caller: Caller) -> source_pb2.Source:
        """Store a new source (due at once unless paused); ``AlreadyExists`` when the id is taken."""
        now = source.created_at.ToDatetime(UTC)
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(insert(sources_table).values(**self._row(source, now)))
                await self._audit(session, caller, "source.create", source.id, _describe(source))
        except IntegrityError:
            raise AlreadyExists("source", source.id) from None
        return await self.get_source(source.id)

    async def get_source(self, source_id: str) -> source_pb2.Source:
        async with self._sessions() as session:
            row = (await session.execute(select(sources_table).where(_s.id == source_id))).one_or_none()
        if row is None:
            raise NotFound("source", source_id)
        return _to_source(row)

    async def find_source(self, source_id: str) -> source_pb2.Source | None:
        try:
            return await self.get_source(source_id)
        except NotFound:
            return None

    async def list_sources(
        self, *, after_id: str, limit: int, kind: int = 0, paused: bool | None = None
    ) -> list[source_pb2.Source]:
        """Sources ordered by id, after ``after_id``, at most ``limit``, filtered by kind and paused state."""
        query = select(sources_table).where(_s.id > after_id).order_by(_s.id).limit(limit)
        if kind:
            query = query.where(_s.kind == kind)
        if paused is not None:
            query = query.where(_s.paused == paused)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_to_source(row) for row in rows]

    async def change_source(
        self,
        source_id: str,
        change: Callable[[source_pb2.Source], source_pb2.Source],
        caller: Caller,
        action: str,
        details: Mapping[str, Any] | None = None,
        *,
        due_now: bool = False,
    ) -> source_pb2.Source:
        """Read, ``change`` (which validates and may raise) and write one source in one transaction, audited.

        ``due_now`` makes the source due at once (ResumeSource); pausing clears the next fetch time.
        """
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(sources_table).where(_s.id == source_id))).one_or_none()
            if row is None:
                raise NotFound("source", source_id)
            changed = change(_to_source(row))
            values: dict[str, Any] = {
                "paused": changed.paused,
                "spec": _spec_bytes(changed),
                "updated_at": changed.updated_at.ToDatetime(UTC),
            }
            if changed.paused:
                values["next_fetch_at"] = None
            elif due_now or row.next_fetch_at is None:
                values["next_fetch_at"] = changed.updated_at.ToDatetime(UTC)
            await session.execute(update(sources_table).where(_s.id == source_id).values(**values))
            await self._audit(session, caller, action, source_id, dict(details or {}))
        return await self.get_source(source_id)

    async def delete_source(self, source_id: str, caller: Caller, check: Callable[[source_pb2.Source], None]) -> None:
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(sources_table).where(_s.id == source_id))).one_or_none()
            if row is None:
                raise NotFound("source", source_id)
            check(_to_source(row))
            await session.execute(delete(sources_table).where(_s.id == source_id))
            await self._audit(session, caller, "source.delete", source_id, {})

    # -- SourceStore (the scheduler's port) --------------------------------------------------------------------

    async def due(self, now: datetime) -> list[source_pb2.Source]:
        """Unpaused sources whose next fetch time has come, the longest waiting first."""
        query = (
            select(sources_table)
            .where(_s.paused.is_(False), _s.builtin.is_(False), _s.next_fetch_at.is_not(None), _s.next_fetch_at <= now)
            .order_by(_s.next_fetch_at)
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_to_source(row) for row in rows]

    async def record_fetch(
        self,
        source_id: str,
        *,
        at: datetime,
        summary: IngestSummary,
        error: str | None,
        fetch_state: FetchState | None,
        next_fetch_at: datetime,
    ) -> None:
        """Store the outcome of one fetch. A source deleted meanwhile is ignored; a paused one stays unscheduled."""
        async with self._sessions() as session, session.begin():
            row = (await session.execute(select(_s.status, _s.paused).where(_s.id == source_id))).one_or_none()
            if row is None:
                return
            status = source_pb2.SourceStatus.FromString(row.status)
            status.last_fetch_at.FromDatetime(at)
            if error is None:
                status.last_success_at.FromDatetime(at)
                status.last_error = ""
                status.consecutive_failures = 0
            else:
                status.last_error = error[:2000]
                status.consecutive_failures += 1
            _count(status, summary)
            if fetch_state is not None:
                status.etag = fetch_state.etag
                status.last_modified = fetch_state.last_modified
            values: dict[str, Any] = {"status": status.SerializeToString()}
            if not row.paused:
                values["next_fetch_at"] = next_fetch_at
            await session.execute(update(sources_table).where(_s.id == source_id).values(**values))

    async def record_import(self, source_id: str, summary: IngestSummary) -> None:
        """Add what an import brought in to the source's counters."""
        async with self._sessions() as session, session.begin():
            raw = await session.scalar(select(_s.status).where(_s.id == source_id))
            if raw is None:
                return
            status = source_pb2.SourceStatus.FromString(raw)
            _count(status, summary)
            await session.execute(
                update(sources_table).where(_s.id == source_id).values(status=status.SerializeToString())
            )

    # -- tips ----------------------------------------------------------------------------------------------------

    async def find_tip(self, principal: str, idempotency_key: str) -> StoredTip | None:
        query = select(tips_table).where(_t.principal == principal, _t.idempotency_key == idempotency_key)
        async with self._sessions() as session:
            row = (await session.execute(query)).one_or_none()
        return None if row is None else _to_tip(row)

    async def get_tip(self, tip_id: str) -> StoredTip | None:
        async with self._sessions() as session:
            row = (await session.execute(select(tips_table).where(_t.id == tip_id))).one_or_none()
        return None if row is None else _to_tip(row)

    async def save_tip(self, tip: StoredTip, caller: Caller) -> None:
        """Store a tip; a concurrent submission with the same idempotency key keeps the first one."""
        details = {
            "tip_id": tip.id,
            "post_id": tip.post.id,
            "origin": source_pb2.TipOrigin.Name(tip.origin),
            "duplicate_of": tip.duplicate_of,
            "has_submitter": tip.submitter_ciphertext is not None,
        }
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    insert(tips_table).values(
                        id=tip.id,
                        principal=tip.principal,
                        agency=tip.agency,
                        idempotency_key=tip.idempotency_key,
                        origin=int(tip.origin),
                        post_id=tip.post.id,
                        post=tip.post.SerializeToString(),
                        duplicate_of=tip.duplicate_of,
                        submitter_ciphertext=tip.submitter_ciphertext,
                        created_at=tip.created_at,
                    )
                )
                await self._audit(session, caller, "tip.submit", tip.id, details)
        except IntegrityError:
            if tip.idempotency_key is None:
                raise
            # The same key won a race with us: that first tip is the one kept (same derived id and post id).

    # -- audit ---------------------------------------------------------------------------------------------------

    async def audit(self, caller: Caller, action: str, target: str, details: Mapping[str, Any]) -> None:
        """Append one audit record on its own (for actions that change no row here, e.g. an import)."""
        async with self._sessions() as session, session.begin():
            await self._audit(session, caller, action, target, details)

    @staticmethod
    async def _audit(
        session: AsyncSession, caller: Caller, action: str, target: str, details: Mapping[str, Any]
    ) -> None:
        await append_audit(
            session, actor=caller.principal, agency=caller.agency, action=action, target=target, details=details
        )


def _count(status: source_pb2.SourceStatus, summary: IngestSummary) -> None:
    status.items_seen += summary.accepted + summary.duplicate + summary.rejected
    status.items_accepted += summary.accepted
    status.items_duplicate += summary.duplicate
    status.items_rejected += summary.rejected


def _to_tip(row: Any) -> StoredTip:
    return StoredTip(
        id=row.id,
        principal=row.principal,
        agency=row.agency,
        idempotency_key=row.idempotency_key,
        origin=source_pb2.TipOrigin.ValueType(row.origin),
        post=post_pb2.Post.FromString(row.post),
        duplicate_of=row.duplicate_of,
        submitter_ciphertext=row.submitter_ciphertext,
        created_at=_utc(row.created_at),
    )


def _describe(source: source_pb2.Source) -> dict[str, Any]:
    """What the audit log keeps of a source: its identity and settings (no secrets live in Source)."""
    return {
        "kind": common_pb2.SourceKind.Name(source.kind),
        "name": source.name,
        "url": source.url,
        "paused": source.paused,
    }
