"""`qingfeng audit verify`: recompute a service's hash-chained audit log and name the first broken record.

Reads the database directly through the shared kernel (``qingfeng.storage.verify_chain``), so it works with the
service stopped. The database is the coordinator's by default (``QF_COORDINATOR_DATABASE__URL``, else its default
SQLite file); ``--database URL`` checks any service's log. Exit 0 when intact, 1 when broken, 2 when unreadable.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from qingfeng.cli._console import CliError

__all__ = ["DEFAULT_URL", "add_verify_arguments", "verify", "verify_url"]

DEFAULT_URL = "sqlite+aiosqlite:///./.qingfeng/coordinator.db"


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the audited database (default: QF_COORDINATOR_DATABASE__URL or the coordinator's "
        "SQLite file)",
    )


async def verify_url(url: str) -> tuple[bool, int, str]:
    """(intact, records, report line) for the audit log at ``url``."""
    # Imported here: SQLAlchemy and Alembic cost every `qingfeng` command ~0.4 s of CPU at start (`qingfeng import`).
    from qingfeng.storage import build_engine, read_audit, session_factory, verify_chain

    engine = build_engine(url)
    try:
        async with session_factory(engine)() as session:
            check = await verify_chain(session)
            records, after = 0, 0
            while page := await read_audit(session, after_seq=after, limit=1000):
                records += len(page)
                after = page[-1].seq
            if check.ok:
                return True, records, f"OK audit chain intact: {records} records"
            bad = check.first_bad_seq or 0
            found = await read_audit(session, after_seq=bad - 1, limit=1)
            if found and found[0].seq == bad:
                r = found[0]
                what = f"seq {bad} ({r.action} on {r.target} by {r.actor} at {r.at.isoformat()})"
            else:
                what = f"seq {bad} (missing)"
            return False, records, f"BROKEN audit chain: first broken record is {what}"
    finally:
        await engine.dispose()


def verify(args: argparse.Namespace) -> int:
    url = args.database or os.environ.get("QF_COORDINATOR_DATABASE__URL") or DEFAULT_URL
    try:
        ok, _, line = asyncio.run(verify_url(url))
    except Exception as err:  # unreachable database, no audit tables: not a verdict on the chain
        raise CliError(f"cannot read the audit log at {url.split('@')[-1]}: {err}", exit_code=2) from err
    print(line)
    return 0 if ok else 1
