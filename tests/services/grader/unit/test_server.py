"""GraderService over a real gRPC server on loopback, with the SQL store on SQLite and in-memory Kafka/ES fakes.

Policies: invalid ones are answered with their errors (line numbers) and the active one stays; updates are dry-run
or applied, audited with the caller; overrides show on the event and are audited; reads filter and page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import GrpcSettings
from qingfeng.storage import build_engine, read_audit, run_migrations, session_factory
from qingfeng.v1 import common_pb2, event_pb2, event_pb2_grpc

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, THREE_TIER_POLICY
from services.grader.adapters.sql import SqlStateStore
from services.grader.app import MIGRATIONS, VERSION_TABLE
from services.grader.core import GraderConfig
from services.grader.server import GraderServicer
from services.grader.settings import CheckpointSettings
from services.grader.state import EngineOwner
from tests.identity import TRUST, signed_channel
from tests.services.grader.unit.test_state import T0, FakeAlertLog, FakeSink, feed, story

W = common_pb2.WarningLevel

BAD_POLICY = """\
kind: grading-policy
name: broken
version: "broken.v1"
scheme: four_color
windows: [10m, 1h]
levels:
  - name: blue
    warning_level: blue
    criteria:
      - {metric: posts, window: total, op: ">=", threshold: lots}
  - name: yellow
    warning_level: yellow
    criteria:
      - {metric: clicks, window: 1h, op: ">=", threshold: 10}
"""


@dataclass
class Service:
    stub: event_pb2_grpc.GraderServiceStub
    owner: EngineOwner
    sink: FakeSink
    url: str


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'grader.db'}"
    await run_migrations(url, MIGRATIONS, VERSION_TABLE)
    engine = build_engine(url)
    sink = FakeSink()
    store = SqlStateStore(engine, posts_topic="posts", alerts_topic="alerts")
    owner = EngineOwner(
        store, sink, FakeAlertLog(sink), config=GraderConfig(),
        cadence=CheckpointSettings(every_batches=1000, every_s=3600),
    )  # fmt: skip
    await owner.activate_configured(DEFAULT_POLICY.read_text(encoding="utf-8"), str(DEFAULT_POLICY))
    await owner.recover()
    await feed(owner, story(120))  # ev-p0: orange
    await feed(owner, story(4, start=T0 + timedelta(minutes=20), prefix="q"))  # ev-q0: blue
    servicer = GraderServicer(owner, store)
    server = build_server(
        GrpcSettings(port=0, plaintext=True),
        services=[
            (
                event_pb2.DESCRIPTOR.services_by_name["GraderService"],
                lambda s: event_pb2_grpc.add_GraderServiceServicer_to_server(servicer, s),
            )
        ],
        interceptors=[CredentialInterceptor(TRUST)],
    )
    await server.server.start()
    # Every call carries a gateway credential for alice of the opinion office.
    channel = signed_channel(f"127.0.0.1:{server.port}", principal="alice", agency="opinion_office", roles=())
    try:
        yield Service(event_pb2_grpc.GraderServiceStub(channel), owner, sink, url)
    finally:
        await channel.close()
        await server.server.stop(0)
        await engine.dispose()


async def _audit(url: str) -> list[tuple[str, str, str, str | None]]:
    engine = build_engine(url)
    try:
        async with session_factory(engine)() as session:
            return [(r.actor, r.action, r.target, r.agency) for r in await read_audit(session)]
    finally:
        await engine.dispose()


# -- policies ---------------------------------------------------------------------------------------------------


async def test_validate_policy_reports_errors_with_lines(service: Service) -> None:
    response = await service.stub.ValidatePolicy(event_pb2.ValidatePolicyRequest(yaml=BAD_POLICY))
    assert not response.valid
    found = {(e.line, e.field) for e in response.errors}
    assert (10, "levels[0].criteria[0].threshold") in found
    assert (14, "levels[1].criteria[0].metric") in found
    good = await service.stub.ValidatePolicy(
        event_pb2.ValidatePolicyRequest(yaml=THREE_TIER_POLICY.read_text(encoding="utf-8"))
    )
    assert good.valid and good.policy.version == "three-tier.v1"
    assert good.policy.scheme == common_pb2.LEVEL_SCHEME_THREE_TIER and len(good.policy.sha256) == 64


async def test_a_policy_missing_its_version_is_answered_not_hung(service: Service) -> None:
    response = await service.stub.ValidatePolicy(
        event_pb2.ValidatePolicyRequest(yaml="kind: grading-policy\nname: x\n"), timeout=10
    )
    assert not response.valid and "version" in {e.field for e in response.errors}


async def test_invalid_update_changes_nothing(service: Service) -> None:
    response = await service.stub.UpdatePolicy(event_pb2.UpdatePolicyRequest(yaml=BAD_POLICY))
    assert not response.applied and response.errors
    assert response.errors[0].line == 10
    active = await service.stub.GetPolicy(event_pb2.GetPolicyRequest())
    assert active.policy.version == "four-level.v4"
    assert active.policy.yaml == DEFAULT_POLICY.read_text(encoding="utf-8")
    assert active.policy.activated_by.id.startswith("config:")
    event = await service.stub.GetEvent(event_pb2.GetEventRequest(id="ev-p0"))
    assert event.event.grade.policy_version == "four-level.v4"


async def test_the_active_version_cannot_be_reused(service: Service) -> None:
    text = DEFAULT_POLICY.read_text(encoding="utf-8").replace("threshold: 3}", "threshold: 4}")
    response = await service.stub.UpdatePolicy(event_pb2.UpdatePolicyRequest(yaml=text))
    assert not response.applied
    line = DEFAULT_POLICY.read_text(encoding="utf-8").splitlines().index('version: "four-level.v4"') + 1
    assert [(e.field, e.line) for e in response.errors] == [("version", line)]


async def test_dry_run_then_apply_a_policy(service: Service) -> None:
    text = THREE_TIER_POLICY.read_text(encoding="utf-8")
    dry = await service.stub.UpdatePolicy(event_pb2.UpdatePolicyRequest(yaml=text, dry_run=True))
    assert not dry.applied and not dry.errors and dry.policy.version == "three-tier.v1"
    assert (await service.stub.GetPolicy(event_pb2.GetPolicyRequest())).policy.version == "four-level.v4"

    stale = event_pb2.UpdatePolicyRequest(yaml=text, expected_active_version="nope")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.UpdatePolicy(stale)
    assert err.value.code() == grpc.StatusCode.ABORTED

    applied = await service.stub.UpdatePolicy(
        event_pb2.UpdatePolicyRequest(yaml=text, expected_active_version="four-level.v4")
    )
    assert applied.applied and applied.policy.activated_by.id == "alice"
    assert applied.policy.activated_by.agency == common_pb2.AGENCY_OPINION_OFFICE
    active = await service.stub.GetPolicy(event_pb2.GetPolicyRequest())
    assert active.policy.version == "three-tier.v1"
    old = await service.stub.GetPolicy(event_pb2.GetPolicyRequest(version="four-level.v4"))
    assert old.policy.yaml == DEFAULT_POLICY.read_text(encoding="utf-8")
    event = await service.stub.GetEvent(event_pb2.GetEventRequest(id="ev-p0"))
    assert event.event.grade.scheme == common_pb2.LEVEL_SCHEME_THREE_TIER and event.event.grade.label
    assert ("alice", "policy.update", "three-tier.v1", "opinion_office") in await _audit(service.url)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await service.stub.GetPolicy(event_pb2.GetPolicyRequest(version="v-none"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


# -- overrides ---------------------------------------------------------------------------------------------------


async def test_override_is_visible_alerted_and_audited_then_cleared(service: Service) -> None:
    before = len(service.sink.alerts)
    request = event_pb2.OverrideLevelRequest(
        event_id="ev-p0", level=W.WARNING_LEVEL_RED, reason="市委领导批示", ttl=Duration(seconds=3600)
    )
    response = await service.stub.OverrideLevel(request)
    assert response.event.level == W.WARNING_LEVEL_RED
    got = (await service.stub.GetEvent(event_pb2.GetEventRequest(id="ev-p0"))).event
    assert got.grade.override.level == W.WARNING_LEVEL_RED and got.grade.override.reason == "市委领导批示"
    assert got.grade.override.actor.id == "alice" and got.grade.override.HasField("expires_at")
    assert got.grade.reasons[0].criterion == "override"
    assert [a.to_level for a in service.sink.alerts[before:]] == [W.WARNING_LEVEL_RED]
    assert ("alice", "event.override", "ev-p0", "opinion_office") in await _audit(service.url)

    cleared = await service.stub.OverrideLevel(event_pb2.OverrideLevelRequest(event_id="ev-p0", reason="批示已落实"))
    assert not cleared.event.grade.HasField("override") and cleared.event.level == W.WARNING_LEVEL_ORANGE
    assert ("alice", "event.override_cleared", "ev-p0", "opinion_office") in await _audit(service.url)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (event_pb2.OverrideLevelRequest(event_id="ev-p0", level=W.WARNING_LEVEL_RED), grpc.StatusCode.INVALID_ARGUMENT),
        (
            event_pb2.OverrideLevelRequest(event_id="ev-x", level=W.WARNING_LEVEL_RED, reason="r"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (event_pb2.OverrideLevelRequest(level=W.WARNING_LEVEL_RED, reason="r"), grpc.StatusCode.INVALID_ARGUMENT),
        (event_pb2.OverrideLevelRequest(event_id="ev-p0", level=42, reason="r"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["no-reason", "unknown-event", "no-event-id", "unknown-level"],
)
async def test_bad_overrides_are_refused(
    service: Service, request_: event_pb2.OverrideLevelRequest, code: object
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.OverrideLevel(request_)
    assert err.value.code() == code


# -- reads -------------------------------------------------------------------------------------------------------


async def test_get_and_explain(service: Service) -> None:
    event = (await service.stub.GetEvent(event_pb2.GetEventRequest(id="ev-p0"))).event
    assert event.level == W.WARNING_LEVEL_ORANGE and event.post_count == 120 and event.title == "某局长违规"
    explained = await service.stub.ExplainGrade(event_pb2.ExplainGradeRequest(event_id="ev-p0"))
    assert explained.policy_level == W.WARNING_LEVEL_ORANGE
    assert explained.grade.level == W.WARNING_LEVEL_ORANGE and explained.metrics
    matched = [e.reason for e in explained.evaluations if e.matched]
    assert any(r.level == W.WARNING_LEVEL_ORANGE and r.threshold for r in matched)
    assert len(explained.evaluations) > len(matched)  # criteria that did not fire are listed too
    assert "某局长违规" in explained.summary and "橙色" in explained.summary
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.GetEvent(event_pb2.GetEventRequest(id="ev-none"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_filters_and_pages(service: Service) -> None:
    everything = await service.stub.ListEvents(event_pb2.ListEventsRequest())
    assert [e.id for e in everything.events] == ["ev-q0", "ev-p0"]  # most recently active first
    orange = await service.stub.ListEvents(event_pb2.ListEventsRequest(min_level=W.WARNING_LEVEL_ORANGE))
    assert [e.id for e in orange.events] == ["ev-p0"]
    region = await service.stub.ListEvents(event_pb2.ListEventsRequest(region_code="330000"))
    assert {e.id for e in region.events} == {"ev-p0", "ev-q0"}  # 杭州 and 宁波 are in 浙江
    elsewhere = await service.stub.ListEvents(event_pb2.ListEventsRequest(region_code="110000"))
    assert not elsewhere.events
    text = await service.stub.ListEvents(event_pb2.ListEventsRequest(query="局长"))
    assert {e.id for e in text.events} == {"ev-p0", "ev-q0"}
    late = Timestamp()
    late.FromDatetime(T0 + timedelta(minutes=12, seconds=30))
    recent = await service.stub.ListEvents(event_pb2.ListEventsRequest(active=common_pb2.TimeRange(start_time=late)))
    assert [e.id for e in recent.events] == ["ev-q0"]
    first = await service.stub.ListEvents(event_pb2.ListEventsRequest(page_size=1))
    assert [e.id for e in first.events] == ["ev-q0"] and first.next_page_token
    second = await service.stub.ListEvents(event_pb2.ListEventsRequest(page_size=1, page_token=first.next_page_token))
    assert [e.id for e in second.events] == ["ev-p0"] and not second.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.ListEvents(
            event_pb2.ListEventsRequest(page_size=1, page_token=first.next_page_token, min_level=W.WARNING_LEVEL_BLUE)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as bad_region:
        await service.stub.ListEvents(event_pb2.ListEventsRequest(region_code="33"))
    assert bad_region.value.code() == grpc.StatusCode.INVALID_ARGUMENT
