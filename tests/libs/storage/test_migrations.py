from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from qingfeng.storage import alembic_config, build_engine, current_revision, head_revision, run_migrations
from sqlalchemy import inspect, text

from .conftest import EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE, OTHER_MIGRATIONS


async def _tables(url: str) -> set[str]:
    engine = build_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrations_run_to_head_and_are_idempotent(db_url: str) -> None:
    assert await current_revision(db_url, EXAMPLE_VERSION_TABLE) is None

    first = await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)
    second = await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)

    assert first == second == head_revision(EXAMPLE_MIGRATIONS) == "0003"
    assert await current_revision(db_url, EXAMPLE_VERSION_TABLE) == "0003"
    tables = await _tables(db_url)
    assert {"outbox", "audit_log", "audit_head", "example_case", "example_note", EXAMPLE_VERSION_TABLE} <= tables
    assert "alembic_version" not in tables  # the version table is the service's own


async def test_services_sharing_a_database_keep_separate_histories(db_url: str) -> None:
    await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)
    assert await current_revision(db_url, "alembic_version_other") is None

    assert await run_migrations(db_url, OTHER_MIGRATIONS, "alembic_version_other") == "0001"
    assert await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE) == "0003"

    assert await current_revision(db_url, EXAMPLE_VERSION_TABLE) == "0003"
    assert await current_revision(db_url, "alembic_version_other") == "0001"
    assert {"other_thing", "example_case", "alembic_version_other"} <= await _tables(db_url)


async def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    results = await asyncio.gather(
        *(run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE) for _ in range(3))
    )
    assert results == ["0003", "0003", "0003"]


async def test_table_rebuild_does_not_cascade_to_referencing_rows(db_url: str) -> None:
    # 0003 rebuilds example_case on SQLite; with foreign keys on, dropping the old copy would delete every note.
    await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE, revision="0002")
    engine = build_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO example_case (id, title, opened_at) VALUES ('c1', '某局长受贿', CURRENT_TIMESTAMP)")
            )
            await conn.execute(text("INSERT INTO example_note (case_id, body) VALUES ('c1', '已转案件管理')"))
        await engine.dispose()

        assert await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE) == "0003"

        async with engine.connect() as conn:
            notes = (await conn.execute(text("SELECT case_id, body FROM example_note"))).all()
            status = (await conn.execute(text("SELECT status FROM example_case"))).scalar_one()
        assert [tuple(n) for n in notes] == [("c1", "已转案件管理")]
        assert status == "open"
    finally:
        await engine.dispose()


async def test_foreign_keys_are_enforced_after_migrating(db_url: str) -> None:
    await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)
    engine = build_engine(db_url)
    try:
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO example_note (case_id, body) VALUES ('missing', 'x')"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("bad", ["alembic-version", "Alembic", "x" * 64, ""])
async def test_version_table_must_be_a_plain_identifier(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="version table"):
        await run_migrations(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", EXAMPLE_MIGRATIONS, bad)


async def test_missing_migrations_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"env\.py"):
        await run_migrations(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path / "nowhere", "alembic_version_x")


def test_alembic_commands_work_with_the_config_built_in_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a developer does outside a service: ``alembic.command`` calls with ``alembic_config`` (no alembic.ini)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}"
    config = alembic_config(url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)

    # Offline: renders the DDL, touches nothing. (Not up to 0003: a SQLite table rebuild needs to reflect the table.)
    command.upgrade(config, "0002", sql=True)
    rendered = capsys.readouterr().out
    assert "CREATE TABLE outbox" in rendered and EXAMPLE_VERSION_TABLE in rendered
    assert asyncio.run(current_revision(url, EXAMPLE_VERSION_TABLE)) is None

    command.upgrade(config, "0001")
    assert asyncio.run(current_revision(url, EXAMPLE_VERSION_TABLE)) == "0001"
    assert asyncio.run(run_migrations(url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)) == "0003"
    command.downgrade(config, "base")
    assert asyncio.run(current_revision(url, EXAMPLE_VERSION_TABLE)) is None
