"""Publisher test fixtures: every SQL test runs on SQLite and on a throwaway PostgreSQL cluster.

The cluster fixtures are the storage kernel's (``tests/libs/storage/conftest.py``), imported so the same code starts
and removes the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.libs.storage.conftest import pg_admin_url, pg_database_url  # noqa: F401 - fixtures


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'publisher.db'}"
    return str(request.getfixturevalue("pg_database_url"))
