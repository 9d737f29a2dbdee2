"""Fixtures of the channel tests: the throwaway PostgreSQL cluster of the storage tests, reused for the feed store."""

from tests.libs.storage.conftest import pg_admin_url, pg_database_url

__all__ = ["pg_admin_url", "pg_database_url"]
