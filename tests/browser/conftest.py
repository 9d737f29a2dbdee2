"""The console in real headless Chromium against the real suite (collector, grader, coordinator, gateway) started as
processes with TLS, signed credentials and a slice of the shared data imported through the gateway.

Chromium is Debian's (``/usr/bin/chromium``, or ``QF_CHROMIUM``), driven by Playwright's Python package with its
executable path set (``playwright install`` is not used). Without it the tests FAIL in CI (env ``CI`` set) and are
skipped with the reason locally. The publisher runs too; one test stops it to see its part of the page say so,
then starts it again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from qingfeng.cli.pki import ca_file
from qingfeng.cli.tokens import every_method
from qingfeng.v1 import case_pb2, event_pb2, publication_pb2, search_pb2, search_pb2_grpc, source_pb2, source_pb2_grpc

from gateway.access import hash_token
from tests.e2e.conftest import identity_env, suite_state  # noqa: F401
from tests.e2e.processes import Running, free_port, start
from tests.shared_servers import drop_run, suite_env

CHROMIUM = Path(os.environ.get("QF_CHROMIUM", "/usr/bin/chromium"))
# The first posts of the shared data (sorted by time): a few cascades, enough for events, grades and a case.
IMPORT_POSTS = int(os.environ.get("QF_BROWSER_POSTS", "3000"))
_FIELDS = ("text", "source", "author", "followers", "reposts", "comments", "likes")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.is_file():
        _missing(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (or set QF_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Playwright's Python package is not installed (make install)")
    return CHROMIUM


_ALL = tuple(
    grant
    for module, service in (
        (source_pb2, "CollectorService"),
        (event_pb2, "GraderService"),
        (case_pb2, "CoordinatorService"),
        (publication_pb2, "PublisherService"),
        (search_pb2, "SearchService"),
    )
    for grant in every_method(module, service)
)
# The first step of every sign-off chain (services/publisher/policies/signoff.yaml).
DIRECTOR_ROLE = "舆情信息办公室主任"
LEADER_ROLE = "分管常委"


@pytest.fixture(scope="session")
def console_tokens() -> dict[str, str]:
    return {name: secrets.token_urlsafe(24) for name in ("office", "police", "director", "leader")}


@pytest.fixture(scope="session")
def console_policy(tmp_path_factory: pytest.TempPathFactory, console_tokens: dict[str, str]) -> Path:
    """The office sees and does everything; the police only lists and completes tasks; the director signs drafts."""
    identities = [
        ("office", "opinion_office", ["analyst", "see_submitter", "see_tips"], list(_ALL)),
        ("police", "police_cyber", [], [f"/qingfeng.v1.CoordinatorService/{m}" for m in ("ListTasks", "CompleteTask")]),
        ("director", "opinion_office", [DIRECTOR_ROLE], list(every_method(publication_pb2, "PublisherService"))),
        # A leader on the ladder: a role the coordinator's routing policy lets escalate by hand.
        ("leader", "discipline_commission", [LEADER_ROLE], list(every_method(case_pb2, "CoordinatorService"))),
    ]
    policy = {
        "version": "browser-1",
        "identities": [
            {"name": n, "agency": a, "roles": r, "grants": g, "token_sha256": hash_token(console_tokens[n])}
            for n, a, r, g in identities
        ],
    }
    path = tmp_path_factory.mktemp("browser-gateway") / "access.yaml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class ConsoleSuite:
    url: str
    grpc_port: int
    state: Path
    tokens: dict[str, str]
    run_id: str
    processes: dict[str, Running]


def _shifted_lines(path: Path, limit: int, run_id: str) -> list[str]:
    """The first ``limit`` posts with fresh ids and times moved so the newest is a few minutes old."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for _, line in zip(range(limit), f, strict=False):
            rows.append(json.loads(line))
    newest = max(dt.datetime.fromisoformat(r["created_at"]) for r in rows)
    shift = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5) - newest
    out = []
    for row in rows:
        post: dict[str, Any] = {key: row[key] for key in _FIELDS if key in row}
        post["id"] = f"{row['id']}-{run_id}"
        post["parent_id"] = f"{row['parent_id']}-{run_id}" if row.get("parent_id") else None
        post["created_at"] = (dt.datetime.fromisoformat(row["created_at"]) + shift).isoformat()
        out.append(json.dumps(post, ensure_ascii=False))
    return out


def _import(port: int, state: Path, token: str, lines: list[str]) -> None:
    """Import through the gateway, then wait until every post is searchable (the indexer runs behind Kafka)."""
    credentials = grpc.ssl_channel_credentials(ca_file(state).read_bytes())
    metadata = [("authorization", f"Bearer {token}")]
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = source_pb2_grpc.CollectorServiceStub(channel)
        requests = (source_pb2.ImportPostsRequest(jsonl_line=line) for line in lines)
        reply = stub.ImportPosts(requests, metadata=metadata, timeout=120)
        assert reply.summary.rejected == 0, reply.summary
        search = search_pb2_grpc.SearchServiceStub(channel)
        everything = search_pb2.SearchPostsRequest(page_size=1)
        everything.filter.include_duplicates = True

        def indexed() -> bool:
            return search.SearchPosts(everything, metadata=metadata, timeout=10).total >= len(lines)

        wait_until(indexed, 90, f"the {len(lines)} imported posts were not all searchable")


@pytest.fixture(scope="session")
def console_suite(
    chromium_path: Path,
    kafka_bootstrap: str,
    es_url: str,
    shared_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
    console_policy: Path,
    identity_env: dict[str, str],  # noqa: F811
    suite_state: Path,  # noqa: F811
    console_tokens: dict[str, str],
) -> Iterator[ConsoleSuite]:
    run_id = secrets.token_hex(4)
    tmp = tmp_path_factory.mktemp("browser-suite")
    topic = f"qf-browser-{run_id}"  # the prefix of every topic, consumer group and index of this suite
    common = {"KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "ELASTICSEARCH__URL": es_url}
    tip_key = tmp / "tip.key"
    tip_key.write_text("c2VjcmV0LWtleS1mb3ItZTJlLXRlc3RzLW9ubHktMzI=\n")
    ports = {name: free_port() for name in ("collector", "grader", "coordinator", "publisher", "gateway")}
    http_port = free_port()
    envs = {
        "collector": {
            **{f"QF_COLLECTOR_{k}": v for k, v in common.items()},
            **suite_env("collector", topic),
            "QF_COLLECTOR_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/collector.db",
            "QF_COLLECTOR_TIP_KEY_FILE": str(tip_key),
        },
        "grader": {
            **{f"QF_GRADER_{k}": v for k, v in common.items()},
            **suite_env("grader", topic),
            "QF_GRADER_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/grader.db",
        },
        "coordinator": {
            **suite_env("coordinator", topic),
            "QF_COORDINATOR_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "QF_COORDINATOR_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/coordinator.db",
        },
        "publisher": {
            **suite_env("publisher", topic),
            "QF_PUBLISHER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "QF_PUBLISHER_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/publisher.db",
            "QF_PUBLISHER_FEED__PORT": str(free_port()),
        },
        "gateway": {
            **{f"QF_GATEWAY_{k}": v for k, v in common.items()},
            **suite_env("gateway", topic),
            "QF_GATEWAY_ACCESS_POLICY": str(console_policy),
            "QF_GATEWAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/gateway.db",  # console sessions
            "QF_GATEWAY_HTTP__PORT": str(http_port),
            "QF_GATEWAY_COLLECTOR_ADDR": f"127.0.0.1:{ports['collector']}",
            "QF_GATEWAY_GRADER_ADDR": f"127.0.0.1:{ports['grader']}",
            "QF_GATEWAY_COORDINATOR_ADDR": f"127.0.0.1:{ports['coordinator']}",
            "QF_GATEWAY_PUBLISHER_ADDR": f"127.0.0.1:{ports['publisher']}",
        },
    }
    modules = {
        "collector": "services.collector",
        "grader": "services.grader",
        "coordinator": "services.coordinator",
        "publisher": "services.publisher",
        "gateway": "gateway",
    }
    running: dict[str, Running] = {}
    try:
        for name, module in modules.items():
            env = {**identity_env, **envs[name]}
            if name == "gateway":
                env["QF_GATEWAY_GRPC__MTLS_PORT"] = str(free_port())
            running[name] = start(name, module, env, tmp, port=ports[name])
        for process in running.values():
            assert process.wait_serving(timeout_s=90) == 1, process.log_tail()
        lines = _shifted_lines(shared_data / "weibo_posts.jsonl", IMPORT_POSTS, run_id)
        _import(ports["gateway"], suite_state, console_tokens["office"], lines)
        url = f"https://127.0.0.1:{http_port}"
        yield ConsoleSuite(url, ports["gateway"], suite_state, console_tokens, run_id, running)
    finally:
        try:
            for process in running.values():
                process.stop()
        finally:  # after the processes, which would recreate what is deleted under them
            drop_run(kafka_bootstrap, es_url, topic)


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API runs an event loop in this thread while it is open, and
    # every asyncio test after it would find a loop already running.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium_path), headless=True)
        try:
            yield launched
        finally:
            launched.close()


def wait_until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout_s} s")
