"""One publisher over a migrated database, fake channels and a settable clock, for the SQL-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from qingfeng.storage import build_engine, outbox_table, run_migrations, verify_chain
from qingfeng.storage.audit import read_audit
from qingfeng.v1 import common_pb2, publication_pb2, publication_request_pb2
from sqlalchemy import MetaData, select

from services.publisher.adapters.policy_yaml import load_policies
from services.publisher.adapters.sql import SqlStore
from services.publisher.app import MIGRATIONS, VERSION_TABLE
from services.publisher.application import Publisher, Topics
from services.publisher.convert import timestamp
from services.publisher.core.delivery import RetryPolicy
from services.publisher.core.model import Actor, Decision, Draft, Kind
from services.publisher.core.policy import Policies
from services.publisher.worker import DeliveryWorker
from tests.services.publisher.fakes import Clock, FakeChannel, FakePlatform

AUTHOR = Actor("writer", "opinion_office", frozenset({"舆情信息办公室主任"}))
DIRECTOR = Actor("director", "opinion_office", frozenset({"舆情信息办公室主任"}))
DIRECTOR_2 = Actor("director-2", "opinion_office", frozenset({"舆情信息办公室主任"}))
DEPUTY = Actor("deputy", "discipline_commission", frozenset({"分管常委"}))
SECRETARY = Actor("secretary", "discipline_commission", frozenset({"纪委书记"}))
CHANNELS = ("weibo-qingfeng", "mastodon-qingfeng")
RETRY = RetryPolicy(max_attempts=3, base_s=10, max_s=60, lease_s=30)

_outbox = outbox_table(MetaData())


@dataclass
class Harness:
    publisher: Publisher
    worker: DeliveryWorker
    store: SqlStore
    clock: Clock
    platform: FakePlatform
    channels: dict[str, FakeChannel]

    async def approved_draft(self, *, level: str = "yellow", channel_ids: tuple[str, ...] = CHANNELS) -> Draft:
        draft = await self.publisher.create_draft(
            AUTHOR, case_id="case-1", kind=Kind.REFUTATION, template_id="refutation.v1", level=level,
            values={"事件": "某局长被带走", "核查结论": "该局长正常履职"}, channel_ids=channel_ids, event_id="ev-1",
        )  # fmt: skip
        draft = await self.publisher.submit(AUTHOR, draft.id)
        signers = {"blue": [DIRECTOR], "yellow": [DIRECTOR, DEPUTY], "orange": [DIRECTOR, DEPUTY, SECRETARY]}
        for signer in signers[level]:
            draft = await self.publisher.sign_off(signer, draft.id, Decision.APPROVED, "同意", draft.revision)
        return draft

    async def outbox(self, topic: str | None = None) -> list[Any]:
        async with self.store.transaction() as s:
            query = select(_outbox).order_by(_outbox.c.id)
            if topic:
                query = query.where(_outbox.c.topic == topic)
            return list((await s.execute(query)).all())

    async def audit_actions(self) -> list[str]:
        async with self.store.transaction() as s:
            assert (await verify_chain(s)).ok
            return [r.action for r in await read_audit(s, limit=10_000)]


def enabled_policies() -> Policies:
    """The shipped policies with the microblog channels enabled (they ship disabled until given their tokens)."""
    policies = load_policies()
    channels = {cid: replace(rule, enabled=True) for cid, rule in policies.channels.items()}
    return replace(policies, channels=channels)


@asynccontextmanager
async def harness(
    db_url: str, *, platform: FakePlatform | None = None, clock: Clock | None = None, topics: Topics | None = None
) -> AsyncIterator[Harness]:
    """A publisher on ``db_url`` (migrated); pass the platform and clock of an earlier one to "restart"."""
    await run_migrations(db_url, MIGRATIONS, VERSION_TABLE)
    engine = build_engine(db_url)
    platform = platform or FakePlatform()
    clock = clock or Clock()
    channels = {cid: FakeChannel(platform) for cid in CHANNELS}
    store = SqlStore(engine)
    publisher = Publisher(store, enabled_policies(), channels, clock=clock, topics=topics or Topics())
    try:
        yield Harness(publisher, DeliveryWorker(publisher, RETRY), store, clock, platform, channels)
    finally:
        await engine.dispose()


def refutation_request(name: str, now: datetime) -> publication_request_pb2.PublicationRequest:
    """The coordinator's request for a rumour refutation: id ``req-<name>-1``, case ``case-<name>``, due in 24 h."""
    request = publication_request_pb2.PublicationRequest(
        id=f"req-{name}-1", case_id=f"case-{name}", event_id=f"ev-{name}", kind=publication_pb2.DRAFT_KIND_REFUTATION,
        level=common_pb2.WARNING_LEVEL_YELLOW, facts={"事件": "某局长被带走调查", "核查结论": "该局长正常履职"},
        playbook_step="false_information.refute", requested_by=common_pb2.Actor(id="coordinator"),
    )  # fmt: skip
    request.requested_at.CopyFrom(timestamp(now))
    request.due_at.CopyFrom(timestamp(now + timedelta(hours=24)))
    return request
