"""Fixtures shared by the coordinator's tests: a migrated database on SQLite and on PostgreSQL (the throwaway cluster
of ``tests/libs/storage/conftest.py``), the bundled policies, a controllable clock, and a store over the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qingfeng.storage import build_engine, run_migrations
from sqlalchemy.ext.asyncio import AsyncEngine

from services.coordinator.adapters.policy_yaml import load_directory, load_playbooks, load_routing
from services.coordinator.adapters.sql import OutboxTopics, SqlStore
from services.coordinator.app import MIGRATIONS, VERSION_TABLE
from services.coordinator.handling import Handling, Policies
from tests.libs.storage.conftest import pg_admin_url, pg_database_url

__all__ = ["T0", "FakeClock", "pg_admin_url", "pg_database_url"]

# A Tuesday, 10:00 in Beijing.
T0 = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)
TOPICS = OutboxTopics("qftest.cases", "qftest.tasks", "qftest.publication-requests")


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def policies() -> Policies:
    return Policies(load_routing(), load_playbooks(), load_directory())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def coordinator_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
async def engine(coordinator_db_url: str) -> AsyncIterator[AsyncEngine]:
    await run_migrations(coordinator_db_url, MIGRATIONS, VERSION_TABLE)
    eng = build_engine(coordinator_db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> SqlStore:
    return SqlStore(engine, TOPICS, node="test")


@pytest.fixture
def handling(store: SqlStore, policies: Policies) -> Handling:
    return Handling(store, policies)
