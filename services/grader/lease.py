"""Who grades: the lease that makes one grade process the leader and any other a warm standby (issue 13).

Two grade processes over the same database and topics must never both publish: their alert ids would be the same
but their effects interleaved. The lease is held for the leader's whole life and released by the operating system
or the database the moment the process dies, so a standby waiting for it takes over within one poll after a kill -9,
without a timeout to wait out:

- ``FileLease`` (SQLite, one host): ``flock`` on a file beside the database. The kernel drops the lock when the last
  descriptor of it closes, which a killed process's exit does. A forked child (the checkpoint encoder) would keep the
  descriptor open, so the file is closed in every child at fork (``os.register_at_fork``).
- ``PostgresLease`` (PostgreSQL, any number of hosts): a session advisory lock on a connection held open. The server
  drops it when that session ends (a killed process's socket closes). A leader whose connection is lost can no longer
  prove it leads: ``holding`` answers False and the grader stops (fail-stop), so two leaders never publish at once for
  longer than a check interval.

A single grade process takes the lease at once and never notices it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import weakref
import zlib
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["FileLease", "Lease", "PostgresLease", "lease_for"]

_log = logging.getLogger(__name__)


class Lease(Protocol):
    """The right to grade. ``try_acquire`` never blocks; ``holding`` is checked by the leader before it publishes."""

    @property
    def where(self) -> str:
        """What the lease is (for logs and the standby's readiness answer)."""
        ...

    async def try_acquire(self) -> bool: ...

    async def holding(self) -> bool: ...

    async def release(self) -> None: ...


_open_leases: weakref.WeakSet[FileLease] = weakref.WeakSet()


def _close_in_child() -> None:
    # Closing the child's copy leaves the lock with the parent; unlocking would release it for both (one open file).
    for lease in list(_open_leases):
        lease.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class FileLease:
    """An exclusive ``flock`` on ``path`` (created if missing); see the module docstring."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    @property
    def where(self) -> str:
        return f"file lock {self._path}"

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        # Who holds it, for an operator reading the file (the lock, not the text, is what counts).
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        self._fd = fd
        _open_leases.add(self)
        return True

    async def holding(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _open_leases.discard(self)
            os.close(fd)  # closing the only descriptor releases the lock

    def forget(self) -> None:
        """Close this process's descriptor without unlocking (a forked child's copy)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_HELD = text(
    "SELECT count(*) > 0 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' "
    "AND classid = 0 AND objid = :k AND granted"
)


class PostgresLease:
    """A session advisory lock named after ``name``, on a connection of its own; see the module docstring."""

    def __init__(self, engine: AsyncEngine, name: str) -> None:
        self._engine = engine
        self._name = name
        # Advisory locks take a 64-bit key: a stable hash of the name (crc32 is the same in every process).
        self._key = zlib.crc32(f"qingfeng-grader:{name}".encode())
        self._conn: AsyncConnection | None = None

    @property
    def where(self) -> str:
        return f"PostgreSQL advisory lock {self._key} ({self._name})"

    async def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = await self._engine.connect()
        try:
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})).scalar())
            await conn.commit()  # the lock is the session's, not the transaction's; end the transaction
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def holding(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            # The lock itself, not only the session: a session replaced under us (a pooler) answers but holds nothing.
            held = (await conn.execute(_HELD, {"k": self._key})).scalar()
            await conn.commit()
            if not held:
                raise RuntimeError("the advisory lock is no longer held by this session")
        except Exception as err:
            _log.error("the lease's database session is lost (%s: %s): this process no longer leads",
                       type(err).__name__, err)  # fmt: skip
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.invalidate()  # never back into the pool: end the session itself
                await conn.close()
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            await conn.commit()
            await conn.close()
        except Exception:
            # Back in the pool the session would keep the lock: end the session itself instead.
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()


def lease_for(database_url: str, engine: AsyncEngine, name: str) -> Lease | None:
    """The lease for the grader's database: a file beside a SQLite file, an advisory lock on PostgreSQL; None for an
    in-memory SQLite database (one process by construction)."""
    url: Any = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return None
        return FileLease(Path(f"{database}.lease"))
    if backend == "postgresql":
        return PostgresLease(engine, name)
    raise ValueError(f"no lease for database backend {backend!r}: use SQLite or PostgreSQL")
