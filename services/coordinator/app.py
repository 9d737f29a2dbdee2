"""The coordinator's composition root: migrates its database, builds the adapters, serves gRPC and runs the loops."""

from __future__ import annotations

from pathlib import Path

from qingfeng.kafka import ALERTS, AUDIT, CASES, TASKS, Producer, ensure_topics, topic_specs
from qingfeng.readiness import kafka_ready, sql_ready
from qingfeng.rpc import build_server, run_until_stopped
from qingfeng.storage import create_engine, run_migrations
from qingfeng.v1 import case_pb2, case_pb2_grpc

from services.coordinator.settings import CoordinatorSettings

__all__ = ["run"]

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_coordinator"


async def run(settings: CoordinatorSettings) -> None:
    await run_migrations(settings.database.url.get_secret_value(), MIGRATIONS, VERSION_TABLE)
    engine = create_engine(settings.database, application_name="qingfeng-coordinator")
    await ensure_topics(settings.kafka, topic_specs(settings.kafka, ALERTS, AUDIT, CASES, TASKS))
    producer = Producer(settings.kafka)
    await producer.start()
    # The service API is not built yet: the generated base answers every method with UNIMPLEMENTED.
    servicer = case_pb2_grpc.CoordinatorServiceServicer()  # type: ignore[abstract]
    server = build_server(
        settings.grpc,
        services=[
            (
                case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"],
                lambda s: case_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, s),
            )
        ],
    )
    await run_until_stopped(
        server,
        readiness=[kafka_ready(settings.kafka), sql_ready(engine)],
        cleanups=[engine.dispose, producer.stop],
        grace_s=settings.grpc.shutdown_grace_s,
    )
