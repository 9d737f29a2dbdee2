"""The async engine and session factory for a service's SQL store.

SQLite (``sqlite+aiosqlite``) is the embedded default and PostgreSQL (``postgresql+asyncpg``) is supported. A URL
given with the bare backend name (``sqlite:///…``, ``postgresql://…``) gets the async driver.

SQLite connections are set up so that the store behaves like a real transactional database:

- the parent directory of the database file is created and the file is switched to ``journal_mode=WAL`` (readers
  do not block the writer) when the engine is built;
- every connection gets ``foreign_keys=ON`` and a busy timeout, so a second writer waits for the lock instead of
  failing at once;
- every transaction starts with ``BEGIN IMMEDIATE``. The sqlite3 driver's legacy mode only begins a transaction
  before DML, so SELECTs and DDL ran outside it; and a deferred transaction that reads and then writes fails with
  "database is locked" when another writer got in between. Taking the write lock up front makes transactions
  serialisable, DDL transactional, and concurrent writers queue on the busy timeout. SQLite allows one writer anyway.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from qingfeng.settings import DatabaseSettings

__all__ = ["build_engine", "create_engine", "is_sqlite", "normalise_url", "session_factory"]

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def normalise_url(url: str | URL) -> URL:
    """The URL with its async driver; ``ValueError`` (password hidden) for a backend the store does not support."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        shown = parsed.render_as_string(hide_password=True)
        raise ValueError(f"unsupported database URL {shown!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def is_sqlite(url: str | URL | AsyncEngine) -> bool:
    """Whether the URL (or the engine's URL) points at SQLite."""
    parsed = url.url if isinstance(url, AsyncEngine) else make_url(url)
    return parsed.get_backend_name() == "sqlite"


def create_engine(
    settings: DatabaseSettings,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout_s: float = 30.0,
    pool_recycle_s: int = 1800,
    busy_timeout_ms: int = 30_000,
    application_name: str | None = None,
) -> AsyncEngine:
    """Build the async engine for ``settings.url``.

    Pool settings apply to PostgreSQL; ``busy_timeout_ms`` is how long a SQLite writer waits for the lock;
    ``application_name`` shows in ``pg_stat_activity``. PostgreSQL is not contacted until the engine is first used;
    a SQLite file is created (and switched to WAL) here.
    """
    return build_engine(
        settings.url.get_secret_value(),
        echo=settings.echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout_s=pool_timeout_s,
        pool_recycle_s=pool_recycle_s,
        busy_timeout_ms=busy_timeout_ms,
        application_name=application_name,
    )


def build_engine(
    url: str | URL,
    *,
    echo: bool = False,
    foreign_keys: bool = True,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout_s: float = 30.0,
    pool_recycle_s: int = 1800,
    busy_timeout_ms: int = 30_000,
    application_name: str | None = None,
) -> AsyncEngine:
    """``create_engine`` from a URL. ``foreign_keys=False`` is for SQLite migrations that rebuild tables."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo, foreign_keys=foreign_keys, busy_timeout_ms=busy_timeout_ms)
    connect_args: dict[str, Any] = {}
    if application_name:
        connect_args["server_settings"] = {"application_name": application_name}
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_s,
        pool_recycle=pool_recycle_s,
        # A connection dropped by a server restart or a proxy is replaced instead of failing the next request.
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to ``engine``. Objects stay readable after commit (no implicit reload in async code)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_engine(url: URL, *, echo: bool, foreign_keys: bool, busy_timeout_ms: int) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        _enable_wal(path, busy_timeout_ms)
    engine = create_async_engine(url, echo=echo)
    pragmas = (
        f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
        f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver must not issue its own BEGIN: ``_on_begin`` does. PRAGMAs run here, outside any transaction,
        # because foreign_keys is silently ignored inside one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _enable_wal(path: Path, busy_timeout_ms: int) -> None:
    """Switch the file to WAL once, here rather than per connection.

    WAL is a property of the file that persists, and switching needs an exclusive lock: done in every new connection,
    it fails with "database is locked" while a sibling connection of a fresh database is inside a transaction.
    """
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
