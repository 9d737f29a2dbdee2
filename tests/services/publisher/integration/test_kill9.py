"""kill -9 of the publisher process between the channel's acceptance and the database update, then a restart: exactly
one post on the channel, for each HTTP adapter (Weibo-style, Mastodon, signed webhook) against local upstreams.

The upstream accepts the post and then holds its answer, so the worker is stuck exactly between the channel's
acceptance and its own database update when the test kills it. The restarted process finds the attempt still
claimed, waits out the lease, asks the channel (``find``) and records the post it finds (Weibo), or re-delivers
under the same idempotency key and gets the first post back (Mastodon, webhook).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from qingfeng.storage import build_engine, run_migrations

from services.publisher.adapters.policy_yaml import CHANNELS_FILE, load_policies
from services.publisher.adapters.sql import SqlStore
from services.publisher.app import MIGRATIONS, VERSION_TABLE
from services.publisher.application import Publisher
from services.publisher.core.model import Decision, Kind, PublicationStatus
from tests.e2e.processes import Running, start
from tests.identity import trust_file
from tests.services.publisher.channels.upstreams import FakeMastodon, FakeWeibo, Upstream, WebhookReceiver
from tests.services.publisher.fakes import FakeChannel, FakePlatform
from tests.services.publisher.harness import AUTHOR, DIRECTOR

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]

WEBHOOK_SECRET = "s" * 40


@dataclass
class Hold:
    """Makes the upstream accept a write and then never answer it, until released."""

    active: bool = True
    accepted: asyncio.Event = field(default_factory=asyncio.Event)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        response = await handler(request)
        if self.active and request.method == "POST" and getattr(response, "status", 500) < 300:
            self.accepted.set()
            await asyncio.sleep(3600)  # the worker waits for this answer until it is killed
        return response


@asynccontextmanager
async def holding(upstream: Upstream, hold: Hold) -> AsyncIterator[str]:
    app = upstream.app()
    app.middlewares.append(hold.middleware)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    upstream.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    await web.SockSite(runner, sock).start()
    try:
        yield upstream.base
    finally:
        await runner.cleanup()
        sock.close()


def channel_entry(kind: str, base: str) -> tuple[dict[str, Any], dict[str, str], Callable[[Upstream], int]]:
    """(channels.yaml entry, environment with its secret, how many items the upstream holds)."""
    if kind == "weibo":
        options = {"base_url": base, "web_url": f"{base}/web", "token_env": "QF_TEST_WEIBO_TOKEN"}
        return options, {"QF_TEST_WEIBO_TOKEN": "weibo-token"}, lambda u: len(u.statuses)  # type: ignore[attr-defined]
    if kind == "mastodon":
        options = {"base_url": base, "token_env": "QF_TEST_MASTODON_TOKEN"}
        return options, {"QF_TEST_MASTODON_TOKEN": "mastodon-token"}, lambda u: len(u.statuses)  # type: ignore[attr-defined]
    options = {"url": f"{base}/hooks/qingfeng", "secret_env": "QF_TEST_WEBHOOK_SECRET"}
    return options, {"QF_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET}, lambda u: len(u.processed)  # type: ignore[attr-defined]


def upstream_for(kind: str) -> Upstream:
    if kind == "weibo":
        return FakeWeibo()
    if kind == "mastodon":
        return FakeMastodon()
    return WebhookReceiver(secret=WEBHOOK_SECRET.encode())


async def wait_for(check: Callable[[], Awaitable[bool]], running: Running, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        assert running.proc.poll() is None, f"publisher exited early:\n{running.log_tail()}"
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{running.log_tail()}")


@pytest.mark.parametrize("kind", ["weibo", "mastodon", "webhook"])
async def test_kill_9_between_acceptance_and_update_then_restart_posts_once(
    kind: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    upstream, hold = upstream_for(kind), Hold()
    run = uuid.uuid4().hex[:10]
    topics = {
        "QF_PUBLISHER_TOPICS__REQUESTS": f"qftest.{run}.publication-requests.v1",
        "QF_PUBLISHER_TOPICS__PUBLICATIONS": f"qftest.{run}.publications.v1",
        "QF_PUBLISHER_TOPICS__DEADLETTER": f"qftest.{run}.publications-deadletter.v1",
    }
    async with holding(upstream, hold) as base:
        options, secrets, count = channel_entry(kind, base)
        shipped = yaml.safe_load(CHANNELS_FILE.read_text(encoding="utf-8"))
        shipped["channels"] = [{"id": f"ch-{kind}", "kind": kind, "display_name": kind, "max_length": 400,
                                "options": options}]  # fmt: skip
        channels_file = tmp_path / "channels.yaml"
        channels_file.write_text(yaml.safe_dump(shipped, allow_unicode=True), encoding="utf-8")
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'publisher.db'}"

        # An approved release, published: one PENDING publication waiting for the worker.
        await run_migrations(db_url, MIGRATIONS, VERSION_TABLE)
        engine = build_engine(db_url)
        store = SqlStore(engine)
        policies = load_policies(channels=channels_file)
        app = Publisher(store, policies, {f"ch-{kind}": FakeChannel(FakePlatform())})
        draft = await app.create_draft(AUTHOR, case_id="case-k9", kind=Kind.STATEMENT, title="情况通报",
                                       body="经核查，情况属实。", level="blue", channel_ids=[f"ch-{kind}"])  # fmt: skip
        await app.submit(AUTHOR, draft.id)
        await app.sign_off(DIRECTOR, draft.id, Decision.APPROVED, "同意", 1)
        [pub] = await app.publish(DIRECTOR, draft.id, [])

        env = {
            "QF_PUBLISHER_DATABASE__URL": db_url,
            "QF_PUBLISHER_IDENTITY__TRUST_FILE": str(trust_file(tmp_path)),
            "QF_PUBLISHER_POLICIES__CHANNELS_FILE": str(channels_file),
            "QF_PUBLISHER_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "QF_PUBLISHER_KAFKA__PARTITIONS": "1",
            "QF_PUBLISHER_GROUP_ID": f"qftest-{run}",
            "QF_PUBLISHER_FEED__PORT": "0",
            "QF_PUBLISHER_GRPC__PLAINTEXT": "true",
            "QF_PUBLISHER_DELIVERY__POLL_S": "0.2",
            "QF_PUBLISHER_DELIVERY__LEASE_S": "2",
            **topics,
            **secrets,
        }
        (tmp_path / "run1").mkdir()
        (tmp_path / "run2").mkdir()
        running = start("publisher", "services.publisher", env, tmp_path / "run1")
        try:

            async def accepted() -> bool:
                return hold.accepted.is_set()

            await wait_for(accepted, running, 90, "the channel to accept the post")
            os.kill(running.proc.pid, signal.SIGKILL)
            running.proc.wait(timeout=10)
        finally:
            if running.proc.poll() is None:
                running.proc.kill()
        assert count(upstream) == 1  # on the channel, unknown to the database
        async with store.transaction() as s:
            stuck = await store.get_publication(s, pub.id)
        assert stuck.status is PublicationStatus.PENDING and stuck.in_flight

        hold.active = False
        again = start("publisher", "services.publisher", env, tmp_path / "run2")
        try:

            async def published() -> bool:
                async with store.transaction() as s:
                    return (await store.get_publication(s, pub.id)).status is PublicationStatus.PUBLISHED

            await wait_for(published, again, 90, "the publication to be recorded")
        finally:
            again.stop()
        async with store.transaction() as s:
            done = await store.get_publication(s, pub.id)
        await engine.dispose()
        assert count(upstream) == 1, f"{kind}: the restart posted a second time"
        assert done.external_id and done.attempts == 2
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(list(topics.values()))
    finally:
        await admin.close()
