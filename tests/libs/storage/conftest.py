"""Fixtures for the SQL store: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is a throwaway cluster started from Debian's server binaries (``/usr/lib/postgresql/<v>/bin``) for the
test session: ``initdb`` into a temporary directory, ``pg_ctl start`` on 127.0.0.1 and a free port, one fresh
database per test, everything stopped and removed at the end. Postgres refuses to run as root, so as root the
cluster runs as the ``postgres`` system user (or ``qingfeng-pg``, created when missing).

``QF_TEST_PG_URL=postgresql://user:pass@host:port/db`` uses an existing server instead (the user needs CREATEDB).
Without a server binary the PostgreSQL cases are skipped with the reason, or fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from qingfeng.storage import build_engine, run_migrations, session_factory
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

EXAMPLE_MIGRATIONS = Path(__file__).parent / "migrations_example"
OTHER_MIGRATIONS = Path(__file__).parent / "migrations_other"
EXAMPLE_VERSION_TABLE = "alembic_version_example"

_PG_USER_FALLBACK = "qingfeng-pg"
_PG_SUPERUSER = "qingfeng"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def _find_bindir() -> Path | None:
    candidates: list[Path] = []
    if explicit := os.environ.get("QF_PG_BINDIR"):
        candidates.append(Path(explicit))
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))

    def version(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The unprivileged user to run postgres as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _PG_USER_FALLBACK):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _PG_USER_FALLBACK],
        check=True,
        capture_output=True,
    )
    return _PG_USER_FALLBACK


@dataclass
class _Cluster:
    bindir: Path
    root: Path
    user: str | None
    port: int = 0

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def init(self) -> None:
        if self.user:
            shutil.chown(self.root, self.user)
        done = self.run("initdb", "-D", str(self.data), "-U", _PG_SUPERUSER, "-A", "trust", "-E", "UTF8",
                        "--no-locale", "--no-sync")  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        last = ""
        for _ in range(3):  # the free port can be taken between probing and binding
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={shlex.quote(str(self.root))}"
                " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
            )
            done = self.run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
            )
            if done.returncode == 0:
                return
            last = self.log.read_text(errors="replace") if self.log.exists() else done.stderr
        raise RuntimeError(f"pg_ctl start failed: {last[-2000:]}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{_PG_SUPERUSER}@127.0.0.1:{self.port}/postgres"


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """URL of a PostgreSQL database whose user may create databases (a throwaway cluster unless QF_TEST_PG_URL)."""
    if existing := os.environ.get("QF_TEST_PG_URL"):
        yield existing
        return
    bindir = _find_bindir()
    if bindir is None:
        _unavailable("no server binaries (initdb, pg_ctl, postgres) under pg_config --bindir or /usr/lib/postgresql")
    assert bindir is not None
    user = _server_user()
    # As root the server user must reach the directory: create it under /tmp, not under a private TMPDIR.
    cluster = _Cluster(bindir, Path(tempfile.mkdtemp(prefix="qf-pg-", dir="/tmp" if user else None)), user)
    try:
        cluster.init()
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def pg_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"qf_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield (
        make_url(pg_admin_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
    )
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database on each backend: a SQLite file in a fresh directory, or a fresh PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'store.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated with the example migrations."""
    await run_migrations(db_url, EXAMPLE_MIGRATIONS, EXAMPLE_VERSION_TABLE)
    eng = build_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)
