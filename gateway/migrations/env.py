"""Alembic environment of the gateway's tables (console sessions): the revisions in ``versions/`` run through the
shared kernel's runner."""

from qingfeng.storage.migrations import run_env

run_env()
