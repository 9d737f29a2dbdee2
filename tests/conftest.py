"""Shared fixtures: where the local stack and the shared data are, checked before a test relies on them.

Integration tests need the real Kafka and Elasticsearch of ``qingfeng stack up``. When a server is not reachable the
test FAILS in CI (env ``CI`` set) and is skipped with the reason otherwise, so a developer without the stack still
gets a green unit run and CI can never pass by skipping.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import qingfeng  # noqa: F401 - before any test module imports grpc: its fork handlers off (libs/qingfeng/__init__.py)

pytest_plugins = ["tests.unclosed_sessions"]  # every aiohttp session closed by the test that made it

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KAFKA = "127.0.0.1:19092"
DEFAULT_ES = "http://127.0.0.1:19200"


def _unavailable(what: str, reason: str) -> None:
    message = f"{what} not reachable ({reason}); start it with `.venv/bin/qingfeng stack up`"
    if os.environ.get("CI"):
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


def _tcp_reachable(bootstrap: str, timeout_s: float = 2.0) -> str | None:
    """None when one of the bootstrap servers accepts a TCP connection, else the last error."""
    error = "no bootstrap server given"
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return None
        except (OSError, ValueError) as err:
            error = f"{server}: {err}"
    return error


def _http_reachable(url: str, timeout_s: float = 3.0) -> str | None:
    """None when the URL answers HTTP 200, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # loopback only, by configuration
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"{url}: {err}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the test Kafka (env ``QF_TEST_KAFKA``, default 127.0.0.1:19092), checked reachable."""
    bootstrap = os.environ.get("QF_TEST_KAFKA", DEFAULT_KAFKA)
    problem = _tcp_reachable(bootstrap)
    if problem is not None:
        _unavailable(f"Kafka at {bootstrap}", problem)
    return bootstrap


@pytest.fixture(scope="session")
def es_url() -> str:
    """URL of the test Elasticsearch (env ``QF_TEST_ES``, default http://127.0.0.1:19200), checked reachable."""
    url = os.environ.get("QF_TEST_ES", DEFAULT_ES).rstrip("/")
    # Not ``GET /``: the integration-test distribution has no handler for it (405).
    problem = _http_reachable(f"{url}/_cluster/health")
    if problem is not None:
        _unavailable(f"Elasticsearch at {url}", problem)
    return url


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data directory (env ``QF_SHARED_DATA``, default ``<repo>/../shared/data``); never copied here."""
    path = Path(os.environ.get("QF_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))).resolve()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set QF_SHARED_DATA)")
    return path
