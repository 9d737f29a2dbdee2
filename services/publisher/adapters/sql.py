"""The publisher's SQL store: drafts, their versions, and publications (SQLite by default, PostgreSQL supported).

Every function works inside the caller's session, so the application puts a state change, its audit record and its
outbox event in one transaction (``SqlStore.transaction``). Writes of a draft or a publication compare its
``version`` column (``UPDATE … WHERE id = ? AND version = ?``): of two concurrent approvals read at the same version,
exactly one updates a row, the other gets ``ConcurrentModification`` and its transaction rolls back. Tables are
created by ``services/publisher/migrations``; the ``Table`` objects here mirror them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from qingfeng.storage import session_factory
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.publisher.core.model import (
    Decision,
    Draft,
    DraftStatus,
    Kind,
    Publication,
    PublicationStatus,
    Step,
    Version,
)
from services.publisher.errors import ConcurrentModification, NotFound

__all__ = ["SqlStore", "drafts_table", "metadata", "publications_table", "versions_table"]

metadata = MetaData()
_ts = DateTime(timezone=True)

drafts_table = Table(
    "publisher_drafts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("case_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("request_id", String(128), nullable=True, unique=True),
    Column("kind", String(20), nullable=False),
    Column("level", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("title", Text(), nullable=False),
    Column("body", Text(), nullable=False),
    Column("template_id", String(100), nullable=False),
    Column("reply_to_post_id", String(512), nullable=False),
    Column("channel_ids", JSON(), nullable=False),
    Column("author", String(255), nullable=False),
    Column("authors", JSON(), nullable=False),
    Column("chain", JSON(), nullable=False),
    Column("revision", Integer(), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("scheduled_at", _ts, nullable=True),
    Column("due_at", _ts, nullable=True),
    Column("clock_started_at", _ts, nullable=True),
    Column("published_at", _ts, nullable=True),
    Column("created_at", _ts, nullable=False),
    Column("updated_at", _ts, nullable=False),
)

versions_table = Table(
    "publisher_draft_versions",
    metadata,
    Column("draft_id", String(64), ForeignKey("publisher_drafts.id"), primary_key=True),
    Column("revision", Integer(), primary_key=True),
    Column("title", Text(), nullable=False),
    Column("body", Text(), nullable=False),
    Column("author", String(255), nullable=False),
    Column("at", _ts, nullable=False),
)

publications_table = Table(
    "publisher_publications",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("draft_id", String(64), ForeignKey("publisher_drafts.id"), nullable=False),
    Column("case_id", String(128), nullable=False),
    Column("channel_id", String(100), nullable=False),
    Column("due_at", _ts, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("round_start", Integer(), nullable=False),
    Column("next_attempt_at", _ts, nullable=True),
    Column("in_flight", Boolean(), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("url", Text(), nullable=False),
    Column("last_error", Text(), nullable=False),
    Column("published_at", _ts, nullable=True),
    Column("retracted_at", _ts, nullable=True),
    Column("retraction_reason", Text(), nullable=False),
    Column("corrections", JSON(), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("updated_at", _ts, nullable=False),
)

_d = drafts_table.c
_v = versions_table.c
_p = publications_table.c


def _utc(at: datetime | None) -> datetime | None:
    # SQLite hands timestamps back naive; they were written in UTC.
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _chain_json(chain: Sequence[Step]) -> list[dict[str, Any]]:
    return [
        {
            "order": s.order,
            "role": s.role,
            "official_level": s.official_level,
            "decision": s.decision.value if s.decision else None,
            "signer": s.signer,
            "comment": s.comment,
            "decided_at": _iso(s.decided_at),
            "revision": s.revision,
        }
        for s in chain
    ]


def _chain(data: Sequence[dict[str, Any]]) -> tuple[Step, ...]:
    return tuple(
        Step(
            order=int(s["order"]),
            role=s["role"],
            official_level=s["official_level"],
            decision=Decision(s["decision"]) if s.get("decision") else None,
            signer=s.get("signer"),
            comment=s.get("comment", ""),
            decided_at=_from_iso(s.get("decided_at")),
            revision=int(s.get("revision", 0)),
        )
        for s in data
    )


def _draft_values(d: Draft) -> dict[str, Any]:
    return {
        "id": d.id,
        "case_id": d.case_id,
        "event_id": d.event_id,
        "request_id": d.request_id or None,
        "kind": d.kind.value,
        "level": d.level,
        "status": d.status.value,
        "title": d.title,
        "body": d.body,
        "template_id": d.template_id,
        "reply_to_post_id": d.reply_to_post_id,
        "channel_ids": list(d.channel_ids),
        "author": d.author,
        "authors": sorted(d.authors),
        "chain": _chain_json(d.chain),
        "revision": d.revision,
        "version": d.version,
        "scheduled_at": d.scheduled_at,
        "due_at": d.due_at,
        "clock_started_at": d.clock_started_at,
        "published_at": d.published_at,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def _to_draft(row: Row[Any]) -> Draft:
    return Draft(
        id=row.id,
        case_id=row.case_id,
        kind=Kind(row.kind),
        title=row.title,
        body=row.body,
        author=row.author,
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=_utc(row.updated_at),  # type: ignore[arg-type]
        status=DraftStatus(row.status),
        level=row.level,
        event_id=row.event_id,
        request_id=row.request_id or "",
        template_id=row.template_id,
        reply_to_post_id=row.reply_to_post_id,
        channel_ids=tuple(row.channel_ids),
        authors=frozenset(row.authors),
        chain=_chain(row.chain),
        revision=row.revision,
        version=row.version,
        scheduled_at=_utc(row.scheduled_at),
        due_at=_utc(row.due_at),
        clock_started_at=_utc(row.clock_started_at),
        published_at=_utc(row.published_at),
    )


def _pub_values(p: Publication, now: datetime) -> dict[str, Any]:
    return {
        "id": p.id,
        "draft_id": p.draft_id,
        "case_id": p.case_id,
        "channel_id": p.channel_id,
        "due_at": p.due_at,
        "status": p.status.value,
        "attempts": p.attempts,
        "round_start": p.round_start,
        "next_attempt_at": p.next_attempt_at,
        "in_flight": p.in_flight,
        "external_id": p.external_id,
        "url": p.url,
        "last_error": p.last_error,
        "published_at": p.published_at,
        "retracted_at": p.retracted_at,
        "retraction_reason": p.retraction_reason,
        "corrections": list(p.corrections),
        "version": p.version,
        "updated_at": now,
    }


def _to_pub(row: Row[Any]) -> Publication:
    return Publication(
        id=row.id,
        draft_id=row.draft_id,
        case_id=row.case_id,
        channel_id=row.channel_id,
        due_at=_utc(row.due_at),  # type: ignore[arg-type]
        status=PublicationStatus(row.status),
        attempts=row.attempts,
        round_start=row.round_start,
        next_attempt_at=_utc(row.next_attempt_at),
        in_flight=bool(row.in_flight),
        external_id=row.external_id,
        url=row.url,
        last_error=row.last_error,
        published_at=_utc(row.published_at),
        retracted_at=_utc(row.retracted_at),
        retraction_reason=row.retraction_reason,
        corrections=tuple(row.corrections),
        version=row.version,
    )


class SqlStore:
    """Reads and optimistic writes of drafts and publications inside a caller's transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    # Drafts

    async def insert_draft(self, s: AsyncSession, draft: Draft) -> None:
        await s.execute(insert(drafts_table).values(**_draft_values(draft)))

    async def get_draft(self, s: AsyncSession, draft_id: str) -> Draft:
        row = (await s.execute(select(drafts_table).where(_d.id == draft_id))).one_or_none()
        if row is None:
            raise NotFound("draft", draft_id)
        return _to_draft(row)

    async def draft_for_request(self, s: AsyncSession, request_id: str) -> Draft | None:
        row = (await s.execute(select(drafts_table).where(_d.request_id == request_id))).one_or_none()
        return None if row is None else _to_draft(row)

    async def save_draft(self, s: AsyncSession, draft: Draft, *, expected_version: int) -> None:
        """Write ``draft`` over the row at ``expected_version``; ConcurrentModification when another write won."""
        if draft.version == expected_version:
            return
        values = _draft_values(draft)
        del values["id"]
        done = await s.execute(
            update(drafts_table).where(_d.id == draft.id, _d.version == expected_version).values(**values)
        )
        if int(getattr(done, "rowcount", 0)) != 1:
            raise ConcurrentModification(f"draft {draft.id!r} was changed by someone else; read it again")

    async def list_drafts(
        self, s: AsyncSession, *, case_id: str = "", status: str = "", kind: str = "", limit: int, offset: int
    ) -> list[Draft]:
        query = select(drafts_table)
        if case_id:
            query = query.where(_d.case_id == case_id)
        if status:
            query = query.where(_d.status == status)
        if kind:
            query = query.where(_d.kind == kind)
        query = query.order_by(_d.updated_at.desc(), _d.id).limit(limit).offset(offset)
        return [_to_draft(r) for r in (await s.execute(query)).all()]

    async def add_version(self, s: AsyncSession, draft_id: str, version: Version) -> None:
        await s.execute(
            insert(versions_table).values(
                draft_id=draft_id,
                revision=version.revision,
                title=version.title,
                body=version.body,
                author=version.author,
                at=version.at,
            )
        )

    async def versions(self, s: AsyncSession, draft_id: str) -> list[Version]:
        rows = (await s.execute(select(versions_table).where(_v.draft_id == draft_id).order_by(_v.revision))).all()
        return [Version(r.revision, r.title, r.body, r.author, _utc(r.at)) for r in rows]  # type: ignore[arg-type]

    # Publications

    async def insert_publication(self, s: AsyncSession, pub: Publication, now: datetime) -> None:
        await s.execute(insert(publications_table).values(**_pub_values(pub, now)))

    async def get_publication(self, s: AsyncSession, publication_id: str) -> Publication:
        row = (await s.execute(select(publications_table).where(_p.id == publication_id))).one_or_none()
        if row is None:
            raise NotFound("publication", publication_id)
        return _to_pub(row)

    async def save_publication(
        self, s: AsyncSession, pub: Publication, *, expected_version: int, now: datetime
    ) -> None:
        values = _pub_values(pub, now)
        del values["id"]
        done = await s.execute(
            update(publications_table).where(_p.id == pub.id, _p.version == expected_version).values(**values)
        )
        if int(getattr(done, "rowcount", 0)) != 1:
            raise ConcurrentModification(f"publication {pub.id!r} was changed by someone else")

    async def delete_publication(self, s: AsyncSession, publication_id: str) -> None:
        await s.execute(delete(publications_table).where(_p.id == publication_id))

    async def publications_of(self, s: AsyncSession, draft_id: str) -> list[Publication]:
        query = select(publications_table).where(_p.draft_id == draft_id).order_by(_p.channel_id)
        return [_to_pub(r) for r in (await s.execute(query)).all()]

    async def due_publications(
        self, s: AsyncSession, now: datetime, *, lease_s: float, limit: int
    ) -> list[Publication]:
        """Pending publications whose time has come: never tried, backed off long enough, or claimed by an attempt
        whose lease ran out (its worker died; the outcome is unknown, so the next attempt looks on the channel)."""
        abandoned = now - timedelta(seconds=lease_s)
        query = (
            select(publications_table)
            .where(
                _p.status == PublicationStatus.PENDING.value,
                _p.due_at <= now,
                or_(
                    and_(_p.in_flight.is_(False), or_(_p.next_attempt_at.is_(None), _p.next_attempt_at <= now)),
                    and_(_p.in_flight.is_(True), _p.next_attempt_at <= abandoned),
                ),
            )
            .order_by(_p.due_at, _p.id)
            .limit(limit)
        )
        return [_to_pub(r) for r in (await s.execute(query)).all()]

    async def list_publications(
        self,
        s: AsyncSession,
        *,
        case_id: str = "",
        draft_id: str = "",
        channel_id: str = "",
        status: str = "",
        limit: int,
        offset: int,
    ) -> list[Publication]:
        query = select(publications_table)
        for column, value in ((_p.case_id, case_id), (_p.draft_id, draft_id), (_p.channel_id, channel_id),
                              (_p.status, status)):  # fmt: skip
            if value:
                query = query.where(column == value)
        query = query.order_by(_p.updated_at.desc(), _p.id).limit(limit).offset(offset)
        return [_to_pub(r) for r in (await s.execute(query)).all()]
