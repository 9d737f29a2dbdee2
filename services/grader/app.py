"""The grader's composition root: builds the adapters from settings, serves gRPC and runs the loops."""

from __future__ import annotations

from qingfeng.elastic import create_client, ensure_index
from qingfeng.kafka import ALERTS, EVENTS, POSTS, Producer, ensure_topics, topic_specs
from qingfeng.readiness import elasticsearch_ready, kafka_ready
from qingfeng.rpc import build_server, run_until_stopped
from qingfeng.v1 import event_pb2, event_pb2_grpc

from services.grader.settings import GraderSettings

__all__ = ["run"]


async def run(settings: GraderSettings) -> None:
    await ensure_topics(settings.kafka, topic_specs(settings.kafka, POSTS, EVENTS, ALERTS))
    es = create_client(settings.elasticsearch)
    await ensure_index(es, settings.elasticsearch.index_prefix, "events")
    producer = Producer(settings.kafka)
    await producer.start()
    # The service API is not built yet: the generated base answers every method with UNIMPLEMENTED.
    servicer = event_pb2_grpc.GraderServiceServicer()  # type: ignore[abstract]
    server = build_server(
        settings.grpc,
        services=[
            (
                event_pb2.DESCRIPTOR.services_by_name["GraderService"],
                lambda s: event_pb2_grpc.add_GraderServiceServicer_to_server(servicer, s),
            )
        ],
    )
    await run_until_stopped(
        server,
        readiness=[kafka_ready(settings.kafka), elasticsearch_ready(es)],
        cleanups=[es.close, producer.stop],
        grace_s=settings.grpc.shutdown_grace_s,
    )
