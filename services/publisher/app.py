"""The publisher's composition root: migrates its database, builds the adapters, serves gRPC and runs the loops."""

from __future__ import annotations

from pathlib import Path

from qingfeng.kafka import CASES, PUBLICATIONS, PUBLICATIONS_DEADLETTER, Producer, ensure_topics, topic_specs
from qingfeng.readiness import kafka_ready, sql_ready
from qingfeng.rpc import build_server, run_until_stopped
from qingfeng.storage import create_engine, run_migrations
from qingfeng.v1 import publication_pb2, publication_pb2_grpc

from services.publisher.settings import PublisherSettings

__all__ = ["run"]

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_publisher"


async def run(settings: PublisherSettings) -> None:
    await run_migrations(settings.database.url.get_secret_value(), MIGRATIONS, VERSION_TABLE)
    engine = create_engine(settings.database, application_name="qingfeng-publisher")
    await ensure_topics(settings.kafka, topic_specs(settings.kafka, CASES, PUBLICATIONS, PUBLICATIONS_DEADLETTER))
    producer = Producer(settings.kafka)
    await producer.start()
    # The service API is not built yet: the generated base answers every method with UNIMPLEMENTED.
    servicer = publication_pb2_grpc.PublisherServiceServicer()  # type: ignore[abstract]
    server = build_server(
        settings.grpc,
        services=[
            (
                publication_pb2.DESCRIPTOR.services_by_name["PublisherService"],
                lambda s: publication_pb2_grpc.add_PublisherServiceServicer_to_server(servicer, s),
            )
        ],
    )
    await run_until_stopped(
        server,
        readiness=[kafka_ready(settings.kafka), sql_ready(engine)],
        cleanups=[engine.dispose, producer.stop],
        grace_s=settings.grpc.shutdown_grace_s,
    )
