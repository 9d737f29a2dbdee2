"""The collector's composition root: builds the adapters from settings, serves gRPC and runs the loops."""

from __future__ import annotations

from qingfeng.elastic import create_client, ensure_index
from qingfeng.kafka import DEADLETTER, POSTS, POSTS_DEADLETTER, Producer, ensure_topics, topic_specs
from qingfeng.readiness import elasticsearch_ready, kafka_ready
from qingfeng.rpc import build_server, run_until_stopped
from qingfeng.v1 import source_pb2, source_pb2_grpc

from services.collector.settings import CollectorSettings

__all__ = ["run"]


async def run(settings: CollectorSettings) -> None:
    await ensure_topics(settings.kafka, topic_specs(settings.kafka, POSTS, POSTS_DEADLETTER, DEADLETTER))
    es = create_client(settings.elasticsearch)
    await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    producer = Producer(settings.kafka)
    await producer.start()
    # The service API is not built yet: the generated base answers every method with UNIMPLEMENTED.
    servicer = source_pb2_grpc.CollectorServiceServicer()  # type: ignore[abstract]
    server = build_server(
        settings.grpc,
        services=[
            (
                source_pb2.DESCRIPTOR.services_by_name["CollectorService"],
                lambda s: source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, s),
            )
        ],
    )
    await run_until_stopped(
        server,
        readiness=[kafka_ready(settings.kafka), elasticsearch_ready(es)],
        cleanups=[es.close, producer.stop],
        grace_s=settings.grpc.shutdown_grace_s,
    )
