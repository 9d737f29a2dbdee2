"""A sampled import yields bounded traces: ImportPosts through the real gRPC server, Kafka and the indexer into
Elasticsearch, every span of this process collected in memory at sample ratio 1.0 (every trace recorded).

Before (issue 12) one import was one trace of two spans per post (6,148 for 3,000 posts). Now: the call's trace has
one span per pipeline slice, each post has a trace of its own (``collect`` + ``send``), each indexer batch is one
span; batch spans link to the posts' traces. A real Jaeger is not needed here (CI does not build it: the build
takes over three minutes); the same spans go to it over OTLP when ``stack up --with-jaeger`` runs.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once
from qingfeng.elastic import IndexNames, ensure_index
from qingfeng.kafka import Producer
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import GrpcSettings, TelemetrySettings
from qingfeng.telemetry import build_provider
from qingfeng.trace_batches import LINKS_DROPPED, MAX_LINKS
from qingfeng.v1 import source_pb2, source_pb2_grpc

from services.collector.app import build_pipeline
from services.collector.indexer import PostIndexer
from services.collector.server import CollectorServicer
from services.collector.settings import CollectorSettings
from services.collector.tips import TipDesk
from tests.identity import TRUST, signed_channel
from tests.services.collector.harness import migrated_store
from tests.services.collector.integration.helpers import wait_for_count

pytestmark = pytest.mark.integration

POSTS = 1_200
BOUND = 50  # spans per trace


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process's global tracer provider at ratio 1.0 into memory, as `setup_tracing` installs it; then reset."""
    exporter = InMemorySpanExporter()
    provider = build_provider(TelemetrySettings(sample_ratio=1.0), process="collector", exporter=exporter)
    previous = trace._TRACER_PROVIDER  # the API sets its global once; tests of the SDK reset it the same way
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = previous


def _line(i: int) -> str:
    return json.dumps(
        {
            "id": f"tr{i}",
            "text": f"第{i}号通报：某县第{i * 7}局局长涉嫌受贿{i * 13}万元，纪委已介入调查",
            "created_at": "2015-03-01T10:00:00+08:00",
            "source": "weibo",
            "author": f"a{i}",
        },
        ensure_ascii=False,
    )


@pytest.fixture
async def collector(settings: CollectorSettings, es: AsyncElasticsearch, tmp_path: Path) -> AsyncIterator[int]:
    """The collector's ImportPosts on a real gRPC server, its pipeline and its indexer in this process."""
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    stop = asyncio.Event()
    async with Producer(settings.kafka) as producer, migrated_store(tmp_path / "collector.db") as (_, store):
        pipeline = build_pipeline(settings, producer)
        servicer = CollectorServicer(store, pipeline, TipDesk(store, pipeline, None))
        server = build_server(
            GrpcSettings(port=0, plaintext=True),
            services=[
                (
                    source_pb2.DESCRIPTOR.services_by_name["CollectorService"],
                    lambda s: source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, s),
                )
            ],
            interceptors=[CredentialInterceptor(TRUST)],
        )
        # Batches of 200: a bulk body over 1 MiB of bytes makes aiohttp warn, and warnings are errors in the tests.
        small_batches = settings.indexer.model_copy(update={"batch_size": 200})
        indexer = PostIndexer(
            es, names.write_alias, producer, kafka=settings.kafka, topics=settings.topics, settings=small_batches
        )
        indexing = asyncio.create_task(indexer.run(stop))
        await server.server.start()
        try:
            yield server.port
        finally:
            stop.set()
            await server.server.stop(0)
            await indexing


async def test_a_sampled_import_yields_bounded_traces_linked_to_every_post(
    spans: InMemorySpanExporter, collector: int, settings: CollectorSettings, es: AsyncElasticsearch
) -> None:
    async with signed_channel(f"127.0.0.1:{collector}") as channel:
        stub = source_pb2_grpc.CollectorServiceStub(channel)
        requests = [source_pb2.ImportPostsRequest(jsonl_line=_line(i)) for i in range(POSTS)]
        answer = await stub.ImportPosts(iter(requests))
    assert answer.summary.accepted + answer.summary.duplicate == POSTS
    read_alias = IndexNames(settings.elasticsearch.index_prefix, "posts").read_alias
    assert await wait_for_count(es, read_alias, POSTS, timeout_s=90) == POSTS
    await asyncio.sleep(1.0)  # the indexer's last batch span ends after its commit

    finished: tuple[ReadableSpan, ...] = spans.get_finished_spans()
    per_trace = Counter(s.context.trace_id for s in finished)
    biggest = max(per_trace.values())
    assert biggest <= BOUND, f"a trace of {biggest} spans"

    (call,) = [s for s in finished if s.kind is SpanKind.SERVER and s.name.endswith("/ImportPosts")]
    in_call = [s for s in finished if s.context.trace_id == call.context.trace_id]
    slices = [s for s in in_call if s.name == "collector send slice"]
    assert len(slices) >= 1 and len(in_call) <= BOUND

    # Each post has a trace of its own: a `collect` root and the producer's send span under it.
    roots = {s.context.trace_id: s for s in finished if s.name.startswith("collect ") and s.parent is None}
    sends = [s for s in finished if s.kind is SpanKind.PRODUCER and s.context.trace_id in roots]
    assert len(roots) == POSTS and len(sends) == POSTS
    assert all(s.parent is not None and s.parent.span_id == roots[s.context.trace_id].context.span_id for s in sends)
    assert call.context.trace_id not in roots

    # The call's slice spans link to the posts' traces: every post linked or counted as dropped over the cap.
    linked = {link.context.trace_id for s in slices for link in s.links}
    dropped = sum(int(s.attributes[LINKS_DROPPED]) for s in slices if s.attributes)
    assert linked <= set(roots) and len(linked) + dropped == POSTS
    assert len(linked) == min(POSTS, MAX_LINKS * len(slices))

    # The indexer: one root span per consumed batch, linked to the send span of each post it indexed.
    batches = [s for s in finished if s.name == f"{settings.indexer.group_id} process batch"]
    assert batches and all(s.parent is None and len(s.links) <= MAX_LINKS for s in batches)
    indexed = sum(int(s.attributes["messaging.batch.message_count"]) for s in batches if s.attributes)
    assert indexed >= POSTS
    send_ids = {s.context.span_id for s in sends}
    batch_links = [link.context for s in batches for link in s.links]
    assert batch_links and all(c.span_id in send_ids for c in batch_links)
    assert not [s for s in finished if s.kind is SpanKind.CONSUMER and s.name.startswith("process ")], (
        "no span per consumed record"
    )
    assert {s.resource.attributes["service.name"] for s in finished} == {"qingfeng-collector"}
