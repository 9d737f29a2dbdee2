"""A second service's migrations, sharing the database with the example ones."""

from qingfeng.storage.migrations import run_env

run_env()
