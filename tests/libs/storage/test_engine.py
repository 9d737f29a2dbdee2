from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from qingfeng.settings import DatabaseSettings
from qingfeng.storage import create_engine, is_sqlite, normalise_url, session_factory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///./a.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///./a.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str) -> None:
    assert normalise_url(given).drivername == driver


def test_unsupported_backend_is_named_without_its_password() -> None:
    with pytest.raises(ValueError, match="unsupported database URL") as caught:
        normalise_url("mysql://user:hunter2@db/x")
    assert "hunter2" not in str(caught.value)


async def test_sqlite_file_gets_its_directory_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "q.db"
    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{path}")))
    try:
        assert is_sqlite(engine)
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() == 30_000
        assert path.is_file()
    finally:
        await engine.dispose()


async def test_sqlite_transactions_are_real(tmp_path: Path) -> None:
    """DDL and SELECTs are inside the transaction (not the sqlite3 driver's legacy autocommit), and roll back."""
    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")))
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (n INTEGER)"))
            await conn.rollback()
        async with engine.connect() as conn:
            tables = (await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))).all()
        assert tables == []
    finally:
        await engine.dispose()


async def _counter_engine(url: str) -> AsyncEngine:
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return engine


async def test_concurrent_read_modify_write_on_sqlite_queues_instead_of_failing(tmp_path: Path) -> None:
    # With deferred transactions, a read followed by a write fails with "database is locked" when another writer
    # committed in between; BEGIN IMMEDIATE makes the writers queue on the busy timeout.
    engine = await _counter_engine(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    sessions = session_factory(engine)

    async def bump() -> None:
        async with sessions() as session, session.begin():
            n = (await session.execute(text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
            await asyncio.sleep(0.005)
            await session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    try:
        await asyncio.gather(*(bump() for _ in range(10)))
        async with sessions() as session:
            assert (await session.execute(text("SELECT n FROM counter"))).scalar_one() == 10
    finally:
        await engine.dispose()


async def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///:memory:")))
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_session_objects_stay_readable_after_commit(db_url: str) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr(db_url)), application_name="qingfeng-test")
    try:
        sessions = session_factory(engine)
        assert sessions.kw["expire_on_commit"] is False
        async with sessions() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
