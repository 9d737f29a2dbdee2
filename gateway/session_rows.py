"""Where console sessions live: in one process's memory (``MemoryRows``, tests and throwaway gateways) or in SQL
shared by every replica (``SqlRows``: SQLite for a single node, PostgreSQL when configured), so a session survives a
restart and works behind any replica.

A row never holds what would let a reader of the table act as someone:

- it is keyed by the SHA-256 of the session id; the id itself is only in the browser's cookie;
- the identity's bearer token (the gateway hands it to the routes on every call) is sealed with AES-GCM under a key
  derived from the session id (HMAC-SHA256), with the row's key as associated data, so it opens only for the holder
  of the cookie and only in its own row;
- the CSRF token is derived from the session id too (``csrf_of``), so it is not stored at all.

``token_sha256`` (the same hash the access policy stores) lets a revoked token end every session opened with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from qingfeng.storage import build_engine, run_migrations, session_factory
from sqlalchemy import Column, Float, LargeBinary, MetaData, String, Table, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "MemoryRows",
    "Row",
    "SessionRows",
    "SqlRows",
    "csrf_of",
    "id_hash",
    "open_token",
    "seal_token",
]

MIGRATIONS: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "alembic_version_gateway"
_NONCE_BYTES: Final = 12

_metadata = MetaData()
sessions_t = Table(
    "gateway_sessions",
    _metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("token_sha256", String(64), nullable=False),
    Column("sealed_token", LargeBinary(), nullable=False),
    Column("identity_name", String(200), nullable=False),
    Column("created_at", Float(), nullable=False),
    Column("last_seen_at", Float(), nullable=False),
)


def id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _derive(session_id: str, purpose: bytes) -> bytes:
    return hmac.new(session_id.encode("utf-8"), b"qingfeng-console-session:" + purpose, hashlib.sha256).digest()


def csrf_of(session_id: str) -> str:
    """The session's CSRF token: derived, so neither stored nor guessable without the cookie."""
    return _derive(session_id, b"csrf").hex()


def seal_token(session_id: str, token: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_derive(session_id, b"token")).encrypt(nonce, token.encode("utf-8"), id_hash(session_id).encode())
    return nonce + sealed


def open_token(session_id: str, sealed: bytes) -> str | None:
    """The token, or None when ``sealed`` was not sealed for this session (a tampered or swapped row)."""
    try:
        plain = AESGCM(_derive(session_id, b"token")).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], id_hash(session_id).encode()
        )
    except (InvalidTag, ValueError):
        return None
    return plain.decode("utf-8")


@dataclass(frozen=True)
class Row:
    id_sha256: str
    token_sha256: str
    sealed_token: bytes
    identity_name: str
    created_at: float  # wall-clock seconds: rows outlive the process and are shared between hosts
    last_seen_at: float


class SessionRows(Protocol):
    """The storage of session rows; times are wall-clock seconds."""

    async def put(self, row: Row, *, max_rows: int) -> None:
        """Store a new row; with ``max_rows`` already stored, the least recently seen goes first."""

    async def get(self, id_sha256: str) -> Row | None: ...

    async def touch(self, id_sha256: str, at: float) -> None: ...

    async def delete(self, id_sha256: str) -> None: ...

    async def delete_token(self, token_sha256: str) -> int:
        """End every session opened with this token; how many."""

    async def purge(self, *, idle_before: float, created_before: float) -> int:
        """Drop rows not seen since ``idle_before`` or created before ``created_before``; how many."""

    async def count(self) -> int: ...


class MemoryRows:
    """Rows in this process's memory: a restart signs everybody out, and replicas do not share them."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}

    async def put(self, row: Row, *, max_rows: int) -> None:
        while self._rows and len(self._rows) >= max_rows:
            oldest = min(self._rows.values(), key=lambda r: r.last_seen_at)
            del self._rows[oldest.id_sha256]
        self._rows[row.id_sha256] = row

    async def get(self, id_sha256: str) -> Row | None:
        return self._rows.get(id_sha256)

    async def touch(self, id_sha256: str, at: float) -> None:
        row = self._rows.get(id_sha256)
        if row is not None:
            self._rows[id_sha256] = Row(**{**row.__dict__, "last_seen_at": at})

    async def delete(self, id_sha256: str) -> None:
        self._rows.pop(id_sha256, None)

    async def delete_token(self, token_sha256: str) -> int:
        gone = [k for k, r in self._rows.items() if r.token_sha256 == token_sha256]
        for key in gone:
            del self._rows[key]
        return len(gone)

    async def purge(self, *, idle_before: float, created_before: float) -> int:
        gone = [k for k, r in self._rows.items() if r.last_seen_at < idle_before or r.created_at < created_before]
        for key in gone:
            del self._rows[key]
        return len(gone)

    async def count(self) -> int:
        return len(self._rows)


class SqlRows:
    """Rows in the gateway's SQL database (migrated on first use, so wiring stays synchronous)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: AsyncEngine | None = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> AsyncEngine:
        if self._engine is None:
            async with self._lock:
                if self._engine is None:
                    await run_migrations(self._url, MIGRATIONS, VERSION_TABLE)
                    self._engine = build_engine(self._url)
        return self._engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def put(self, row: Row, *, max_rows: int) -> None:
        engine = await self._ready()
        async with session_factory(engine)() as session, session.begin():
            stored = (await session.execute(select(func.count()).select_from(sessions_t))).scalar_one()
            if stored >= max_rows:
                oldest = select(sessions_t.c.id_sha256).order_by(sessions_t.c.last_seen_at).limit(stored - max_rows + 1)
                await session.execute(delete(sessions_t).where(sessions_t.c.id_sha256.in_(oldest.scalar_subquery())))
            await session.execute(insert(sessions_t).values(**row.__dict__))

    async def get(self, id_sha256: str) -> Row | None:
        engine = await self._ready()
        async with engine.connect() as conn:
            found = (await conn.execute(select(sessions_t).where(sessions_t.c.id_sha256 == id_sha256))).first()
        return Row(**found._mapping) if found is not None else None

    async def _write(self, statement: object) -> int:
        engine = await self._ready()
        async with engine.begin() as conn:
            done = await conn.execute(statement)  # type: ignore[call-overload]
        return int(done.rowcount or 0)

    async def touch(self, id_sha256: str, at: float) -> None:
        await self._write(update(sessions_t).where(sessions_t.c.id_sha256 == id_sha256).values(last_seen_at=at))

    async def delete(self, id_sha256: str) -> None:
        await self._write(delete(sessions_t).where(sessions_t.c.id_sha256 == id_sha256))

    async def delete_token(self, token_sha256: str) -> int:
        return await self._write(delete(sessions_t).where(sessions_t.c.token_sha256 == token_sha256))

    async def purge(self, *, idle_before: float, created_before: float) -> int:
        old = or_(sessions_t.c.last_seen_at < idle_before, sessions_t.c.created_at < created_before)
        return await self._write(delete(sessions_t).where(old))

    async def count(self) -> int:
        engine = await self._ready()
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(sessions_t))).scalar_one())
