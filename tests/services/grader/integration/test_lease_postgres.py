"""The PostgreSQL lease: one session holds it; a lost session is noticed by its holder and frees it for another.

Uses the throwaway PostgreSQL cluster of the storage tests (``QF_TEST_PG_URL`` to use an existing server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.grader.lease import PostgresLease
from tests.libs.storage.conftest import pg_admin_url, pg_database_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
async def engines(pg_database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:  # noqa: F811
    # Two engines stand for two grader processes: advisory locks belong to sessions.
    a, b = create_async_engine(pg_database_url), create_async_engine(pg_database_url)
    try:
        yield a, b
    finally:
        await a.dispose()
        await b.dispose()


async def test_one_session_holds_it_and_a_lost_session_frees_it(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    first, second = PostgresLease(engines[0], "posts"), PostgresLease(engines[1], "posts")
    other_topic = PostgresLease(engines[1], "other-posts")
    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert await other_topic.try_acquire(), "graders of other topics do not share a lease"
    assert await first.holding()

    # The leader's session ends under it (a network partition, the server restarting it): it must notice.
    async with engines[1].connect() as conn:
        pids = (
            (
                await conn.execute(
                    text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"), {"k": first._key}
                )
            )
            .scalars()
            .all()
        )
        assert len(pids) == 1
        await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pids[0]})
        await conn.commit()
    assert not await first.holding(), "a leader whose session is gone no longer leads"
    assert await second.try_acquire()
    await second.release()
    assert await first.try_acquire(), "released: free again"
    await first.release()
    await other_topic.release()


async def test_a_session_that_no_longer_holds_the_lock_is_no_leader(engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    lease = PostgresLease(engines[0], "posts")
    assert await lease.try_acquire()
    conn = lease._conn
    assert conn is not None
    # The session answers but the lock is gone (as after a pooler swapped the session): holding must say so.
    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lease._key})
    await conn.commit()
    assert not await lease.holding()
    other = PostgresLease(engines[1], "posts")
    assert await other.try_acquire()
    await other.release()
