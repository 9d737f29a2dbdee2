"""Alembic migrations without an ``alembic.ini``, one version table per service.

Every service that owns tables keeps its revision scripts in its own ``migrations/`` directory (``env.py`` plus
``versions/``) and records its revision in its own version table (``alembic_version_coordinator`` …), so services
sharing one database never see each other's history. A service calls ``run_migrations`` at every start; it is a
no-op when the database is already at head. Its ``env.py`` is two lines::

    from qingfeng.storage.migrations import run_env
    run_env()  # or run_env(metadata) to let `alembic revision --autogenerate` compare against the models

The whole upgrade runs in one transaction: on PostgreSQL DDL is transactional and an advisory lock (keyed by the
version table) makes replicas starting together take turns; on SQLite the engine's ``BEGIN IMMEDIATE`` does the same.
SQLite migrations run with foreign keys off, because batch migrations rebuild tables and dropping the old copy
would otherwise fire ``ON DELETE`` actions; ``PRAGMA foreign_key_check`` must come back clean before the commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from qingfeng.storage.engine import build_engine, is_sqlite

__all__ = [
    "MigrationError",
    "alembic_config",
    "current_revision",
    "head_revision",
    "run_env",
    "run_migrations",
]

_VERSION_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Keys of ``Config.attributes`` that ``run_migrations`` hands to ``run_env``.
_CONNECTION = "qingfeng.connection"
_VERSION_TABLE_KEY = "qingfeng.version_table"
_URL = "qingfeng.url"


class MigrationError(RuntimeError):
    """A migration left the database inconsistent (e.g. SQLite foreign key violations); nothing was committed."""


def alembic_config(url: str, script_location: Path, version_table: str) -> Config:
    """An alembic ``Config`` built in code, for ``alembic.command`` calls (``revision``, ``history`` …).

    The URL travels in ``Config.attributes`` rather than the ini options, where ``%`` in a password would be read as
    interpolation.
    """
    _check_version_table(version_table)
    if not (script_location / "env.py").is_file():
        raise FileNotFoundError(f"no env.py in migrations directory {script_location}")
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes[_VERSION_TABLE_KEY] = version_table
    config.attributes[_URL] = url
    return config


async def run_migrations(url: str, script_location: Path, version_table: str, *, revision: str = "head") -> str | None:
    """Upgrade the database at ``url`` to ``revision`` with the scripts in ``script_location``; return the revision.

    Safe to call at every start: a database already at ``revision`` is left untouched.
    """
    config = alembic_config(url, script_location, version_table)
    sqlite = is_sqlite(url)
    engine = build_engine(url, foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await _lock(conn, version_table)

            def upgrade(sync_conn: Connection) -> str | None:
                config.attributes[_CONNECTION] = sync_conn
                try:
                    command.upgrade(config, revision)
                finally:
                    del config.attributes[_CONNECTION]
                return _current(sync_conn, version_table)

            current = await conn.run_sync(upgrade)
            if sqlite:
                violations = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if violations:
                    raise MigrationError(f"foreign key violations after migrating {version_table}: {violations[:10]}")
        return current
    finally:
        await engine.dispose()


async def current_revision(url: str, version_table: str) -> str | None:
    """The revision recorded in ``version_table`` (None for a database never migrated)."""
    _check_version_table(version_table)
    engine = build_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current, version_table)
    finally:
        await engine.dispose()


def head_revision(script_location: Path) -> str | None:
    """The head revision of the scripts in ``script_location`` (compare with ``current_revision`` in health checks)."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return ScriptDirectory.from_config(config).get_current_head()


def run_env(target_metadata: MetaData | None = None) -> None:
    """The body of a service's ``migrations/env.py``.

    Inside ``run_migrations`` it migrates over the connection it is given. From the ``alembic`` command line or
    ``alembic.command`` with ``alembic_config`` it connects to the configured URL itself, or renders SQL in offline
    mode (``--sql``).
    """
    from alembic import context  # the proxy is only populated while alembic runs env.py

    config = context.config
    version_table = config.attributes.get(_VERSION_TABLE_KEY) or config.get_main_option("version_table")
    if not version_table:
        raise MigrationError("no version table: run migrations through qingfeng.storage.migrations")
    url = config.attributes.get(_URL) or config.get_main_option("sqlalchemy.url")
    options: dict[str, Any] = {"target_metadata": target_metadata, "version_table": version_table}

    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, render_as_batch=bool(url and is_sqlite(url)), **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    connection: Connection | None = config.attributes.get(_CONNECTION)
    if connection is not None:
        _migrate(connection, options)
        return
    if not url:
        raise MigrationError("no database URL: pass one to alembic_config")
    asyncio.run(_migrate_url(url, options))


def _migrate(connection: Connection, options: dict[str, Any]) -> None:
    from alembic import context

    # Batch mode lets autogenerate write ALTERs that SQLite can run (it rebuilds the table).
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite", **options)
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_url(url: str, options: dict[str, Any]) -> None:
    engine = build_engine(url, foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await _lock(conn, options["version_table"])
            await conn.run_sync(_migrate, options)
    finally:
        await engine.dispose()


async def _lock(conn: AsyncConnection, version_table: str) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already holds the database's single write lock
    key = int.from_bytes(hashlib.sha256(version_table.encode()).digest()[:8], "big", signed=True)
    # Held until the transaction ends: a second replica waits, then finds the database at head.
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _current(conn: Connection, version_table: str) -> str | None:
    context = MigrationContext.configure(conn, opts={"version_table": version_table})
    return context.get_current_revision()


def _check_version_table(version_table: str) -> None:
    if not _VERSION_TABLE.match(version_table):
        raise ValueError(
            f"version table {version_table!r} must be a lower-case SQL identifier of at most 63 characters"
        )
