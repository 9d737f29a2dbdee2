"""Alembic environment of the example migrations: what a service's ``migrations/env.py`` looks like."""

from qingfeng.storage.migrations import run_env

run_env()
