"""The file lease: one holder at a time, released the moment its process dies, never kept by a forked child.

The tests with processes are synchronous (they block on them), driving the lease with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.grader.lease import FileLease, PostgresLease, lease_for

_HOLD = """
import asyncio, sys, time
from pathlib import Path
from services.grader.lease import FileLease
lease = FileLease(Path(sys.argv[1]))
assert asyncio.run(lease.try_acquire())
print("held", flush=True)
time.sleep(60)
"""


async def test_one_holder_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "grader.db.lease"
    first, second = FileLease(path), FileLease(path)
    assert await first.try_acquire()
    assert await first.try_acquire(), "taking it again is a no-op"
    assert not await second.try_acquire()
    assert await first.holding() and not await second.holding()
    await first.release()
    assert await second.try_acquire()
    assert f"pid {os.getpid()}" in path.read_text()
    await second.release()


def test_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "grader.db.lease"
    with subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            lease = FileLease(path)
            assert not asyncio.run(lease.try_acquire())
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            assert asyncio.run(lease.try_acquire()), "a kill -9 releases the lease at once"
            asyncio.run(lease.release())
        finally:
            holder.kill()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "grader.db.lease"
    lease = FileLease(path)
    assert asyncio.run(lease.try_acquire())
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (as the checkpoint encoder): outlives the parent's release
        os.write(ready_w, b"x")  # the at-fork handlers have run by now
        time.sleep(3)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        asyncio.run(lease.release())
        other = FileLease(path)
        assert asyncio.run(other.try_acquire()), "the child's copy of the descriptor kept the lock"
        asyncio.run(other.release())
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)


def test_lease_by_database(tmp_path: Path) -> None:
    sqlite = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/g.db")
    lease = lease_for(f"sqlite+aiosqlite:///{tmp_path}/g.db", sqlite, "posts")
    assert isinstance(lease, FileLease) and lease.where.endswith("g.db.lease")
    assert lease_for("sqlite+aiosqlite:///:memory:", sqlite, "posts") is None
    pg = create_async_engine("postgresql+asyncpg://u:p@127.0.0.1:1/db")
    assert isinstance(lease_for("postgresql+asyncpg://u:p@127.0.0.1:1/db", pg, "posts"), PostgresLease)
    with pytest.raises(ValueError, match="no lease"):
        lease_for("mysql+aiomysql://u:p@127.0.0.1/db", sqlite, "posts")
