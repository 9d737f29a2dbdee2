"""CollectorService over a real in-process gRPC server, SQLite registry and an in-memory Kafka sink.

Checks the contract a client sees: status codes with google.rpc details, paging, field masks, built-in sources,
ImportPosts counting and the audit trail with the caller from the gateway's metadata.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from pydantic import SecretStr
from qingfeng.settings import DatabaseSettings
from qingfeng.storage import create_engine, read_audit, session_factory, verify_chain
from qingfeng.v1 import common_pb2, post_pb2, source_pb2, source_pb2_grpc

from services.collector.adapters.sql import SqlStore
from services.collector.registry import BUILTIN_SOURCES, IMPORT_SOURCE_ID
from services.collector.server import CollectorServicer
from services.collector.tips import TipCipher, TipDesk
from tests.services.collector.fakes import FakeProducer as Sink
from tests.services.collector.harness import NOW, TOPICS, migrated_store, pipeline_over, serving


class Env:
    def __init__(self, stub: source_pb2_grpc.CollectorServiceStub, sink: Sink, store: SqlStore, url: str) -> None:
        self.stub = stub
        self.sink = sink
        self.store = store
        self.url = url


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with migrated_store(tmp_path / "collector.db") as (url, store):
        sink = Sink()
        pipeline = pipeline_over(sink)
        tips = TipDesk(store, pipeline, TipCipher(SecretStr(Fernet.generate_key().decode())))
        servicer = CollectorServicer(store, pipeline, tips, import_chunk=3, clock=lambda: NOW)
        async with serving(servicer) as stub:
            yield Env(stub, sink, store, url)


def rss(source_id: str = "hz-daily", **fields: Any) -> source_pb2.Source:
    return source_pb2.Source(
        id=source_id, kind=common_pb2.SOURCE_KIND_RSS, name="杭州日报", url="https://news.example.cn/rss", **fields
    )


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def error_reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


async def test_create_get_and_defaults(env: Env) -> None:
    created = (await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss()))).source
    assert created.id == "hz-daily" and created.respect_robots_txt
    assert created.schedule_interval.ToSeconds() == 900 and created.max_attempts == 3
    assert created.status.HasField("next_fetch_at")  # due at the next tick
    got = (await env.stub.GetSource(source_pb2.GetSourceRequest(id="hz-daily"))).source
    assert got == created


async def test_create_generates_an_id_and_refuses_a_taken_one(env: Env) -> None:
    generated = (await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss("")))).source
    assert generated.id.startswith("rss-")
    await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss("taken")))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss("taken")))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_invalid_source_reports_every_field(env: Env) -> None:
    bad = source_pb2.Source(
        id="Bad ID",
        kind=common_pb2.SOURCE_KIND_HTML,
        url="ftp://x",
        max_attempts=99,
        html=source_pb2.HtmlConfig(item_selector="li"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == "ERROR_REASON_INVALID_ARGUMENT"
    assert set(violations(err.value)) >= {
        "source.id",
        "source.name",
        "source.url",
        "source.max_attempts",
        "source.html.link_selector",
        "source.html.body_selector",
    }


async def test_config_must_match_kind(env: Env) -> None:
    mismatched = rss(jsonl=source_pb2.JsonlConfig(path="/x.jsonl"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=mismatched))
    assert "source.jsonl" in violations(err.value)


async def test_unknown_source_is_not_found(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.GetSource(source_pb2.GetSourceRequest(id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(err.value) == "ERROR_REASON_NOT_FOUND"


async def test_list_pages_through_sources_by_id_with_filters(env: Env) -> None:
    for i in range(5):
        await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss(f"s{i}")))
    seen: list[str] = []
    token = ""
    while True:
        page = await env.stub.ListSources(
            source_pb2.ListSourcesRequest(page_size=2, page_token=token, kind=common_pb2.SOURCE_KIND_RSS)
        )
        seen += [s.id for s in page.sources]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["s0", "s1", "s2", "s3", "s4"]
    paused = await env.stub.ListSources(source_pb2.ListSourcesRequest(paused=True))
    assert {s.id for s in paused.sources} == {s.id for s in BUILTIN_SOURCES}


async def test_a_page_token_of_another_query_is_refused(env: Env) -> None:
    for i in range(3):
        await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss(f"s{i}")))
    page = await env.stub.ListSources(source_pb2.ListSourcesRequest(page_size=1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ListSources(
            source_pb2.ListSourcesRequest(page_size=1, page_token=page.next_page_token, paused=False)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(err.value) == "ERROR_REASON_INVALID_PAGE_TOKEN"
    with pytest.raises(grpc.aio.AioRpcError):
        await env.stub.ListSources(source_pb2.ListSourcesRequest(page_token="garbage!"))


async def test_update_with_a_mask_changes_only_the_named_fields(env: Env) -> None:
    await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss()))
    patch = source_pb2.Source(id="hz-daily", name="新名字", url="https://other.example.cn/feed")
    updated = (
        await env.stub.UpdateSource(source_pb2.UpdateSourceRequest(source=patch, update_mask=FieldMask(paths=["name"])))
    ).source
    assert updated.name == "新名字" and updated.url == "https://news.example.cn/rss"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.UpdateSource(
            source_pb2.UpdateSourceRequest(source=patch, update_mask=FieldMask(paths=["status"]))
        )
    assert "update_mask" in violations(err.value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        changed_kind = source_pb2.Source(id="hz-daily", kind=common_pb2.SOURCE_KIND_HTML)
        await env.stub.UpdateSource(
            source_pb2.UpdateSourceRequest(source=changed_kind, update_mask=FieldMask(paths=["name"]))
        )
    assert "source.kind" in violations(err.value)


async def test_update_can_turn_robots_off_and_reaches_into_the_config(env: Env) -> None:
    html = source_pb2.Source(
        id="forum",
        kind=common_pb2.SOURCE_KIND_HTML,
        name="论坛",
        url="https://bbs.example.cn/list",
        html=source_pb2.HtmlConfig(item_selector="li", link_selector="a", body_selector=".post"),
    )
    await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=html))
    patch = source_pb2.Source(id="forum", html=source_pb2.HtmlConfig(body_selector="#content"))
    updated = (
        await env.stub.UpdateSource(
            source_pb2.UpdateSourceRequest(
                source=patch, update_mask=FieldMask(paths=["html.body_selector", "respect_robots_txt"])
            )
        )
    ).source
    assert updated.html.body_selector == "#content" and updated.html.item_selector == "li"
    assert not updated.respect_robots_txt


async def test_pause_resume_delete(env: Env) -> None:
    await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss()))
    paused = (await env.stub.PauseSource(source_pb2.PauseSourceRequest(id="hz-daily", reason="站方要求"))).source
    assert paused.paused and not paused.status.HasField("next_fetch_at")
    assert await env.store.due(datetime.now(UTC)) == []
    resumed = (await env.stub.ResumeSource(source_pb2.ResumeSourceRequest(id="hz-daily"))).source
    assert not resumed.paused and resumed.status.HasField("next_fetch_at")
    assert [s.id for s in await env.store.due(datetime.now(UTC))] == ["hz-daily"]
    await env.stub.DeleteSource(source_pb2.DeleteSourceRequest(id="hz-daily"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.DeleteSource(source_pb2.DeleteSourceRequest(id="hz-daily"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_builtin_sources_cannot_be_changed(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ResumeSource(source_pb2.ResumeSourceRequest(id=IMPORT_SOURCE_ID))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.DeleteSource(source_pb2.DeleteSourceRequest(id=IMPORT_SOURCE_ID))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _stream(*requests: source_pb2.ImportPostsRequest) -> AsyncIterator[source_pb2.ImportPostsRequest]:
    for request in requests:
        yield request
        await asyncio.sleep(0)


def line(native_id: str, text: str) -> str:
    """A line in the shared data's format."""
    item = {"id": native_id, "text": text, "created_at": "2015-03-01T10:00:00+08:00", "source": "weibo"}
    return json.dumps(
        {**item, "author": "a1", "followers": 10, "reposts": 0, "comments": 0, "likes": 0}, ensure_ascii=False
    )


async def test_import_counts_accepted_duplicate_and_rejected(env: Env) -> None:
    lines = [
        line("1", "某县局长涉嫌受贿，纪委已介入调查此事"),
        line("2", "某县局长涉嫌受贿，纪委已介入调查此事"),  # a copy
        "{broken",
        line("3", "全市中小学九月一日开学，家长注意接送安全"),
        line("1", "某县局长涉嫌受贿，纪委已介入调查此事"),  # the same item again
    ]
    post = post_pb2.Post(native_id="n9", text="道路施工通知：城东道路封闭施工一周，请绕行")
    requests = [source_pb2.ImportPostsRequest(jsonl_line=line) for line in lines]
    requests.append(source_pb2.ImportPostsRequest(post=post))
    response = await env.stub.ImportPosts(_stream(*requests))
    summary = response.summary
    assert (summary.accepted, summary.duplicate, summary.rejected) == (3, 2, 1)
    assert [(r.index, r.reason) for r in summary.rejections] == [(3, post_pb2.DEAD_LETTER_REASON_MALFORMED)]
    assert "invalid JSON" in summary.rejections[0].message
    produced = [r.message for r in env.sink.sent if r.topic == TOPICS.posts]
    assert len(produced) == 4  # the re-sent id 1 is not produced twice
    imported = [p for p in produced if isinstance(p, post_pb2.Post) and p.native_id == "n9"]
    assert imported and imported[0].id == "jsonl:import:n9" and imported[0].source_id == IMPORT_SOURCE_ID
    status = (await env.stub.GetSource(source_pb2.GetSourceRequest(id=IMPORT_SOURCE_ID))).source.status
    assert (status.items_seen, status.items_accepted, status.items_duplicate, status.items_rejected) == (6, 3, 2, 1)


async def test_import_into_an_unknown_source_is_not_found(env: Env) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await env.stub.ImportPosts(_stream(source_pb2.ImportPostsRequest(source_id="nope", jsonl_line="{}")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_changes_are_audited_with_the_caller(env: Env) -> None:
    await env.stub.CreateSource(source_pb2.CreateSourceRequest(source=rss()))
    await env.stub.PauseSource(source_pb2.PauseSourceRequest(id="hz-daily", reason="站方要求"))
    await env.stub.ImportPosts(_stream(source_pb2.ImportPostsRequest(jsonl_line=line("1", "某局长受贿"))))
    engine = create_engine(DatabaseSettings(url=SecretStr(env.url)))
    try:
        async with session_factory(engine)() as session:
            records = await read_audit(session)
            assert (await verify_chain(session)).ok
    finally:
        await engine.dispose()
    assert [(r.action, r.actor, r.agency) for r in records] == [
        ("source.create", "analyst", "opinion_office"),
        ("source.pause", "analyst", "opinion_office"),
        ("posts.import", "analyst", "opinion_office"),
    ]
    assert records[1].details == {"reason": "站方要求"}
    assert records[2].details["accepted"] == 1
