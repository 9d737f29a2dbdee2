"""The coordinator's composition root: migrates its database, loads the policies, builds the store, the consumer, the
outbox relay, the deadline loop and the gRPC servicer, and owns the shutdown order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qingfeng.kafka import DeadLetterSender, OutboxSender, Producer, TopicSpec, ensure_topics, topic_specs
from qingfeng.kafka.topics import TOPICS
from qingfeng.metrics import serve_metrics
from qingfeng.readiness import kafka_ready, sql_ready
from qingfeng.rpc import ReadinessCheck, build_server, credential_interceptor, run_until_stopped
from qingfeng.storage import create_engine, run_migrations, run_relay
from qingfeng.v1 import case_pb2, case_pb2_grpc, publication_request_pb2

from services.coordinator.adapters.policy_yaml import load_directory, load_playbooks, load_routing
from services.coordinator.adapters.sql import OutboxTopics, SqlStore
from services.coordinator.consumer import InputConsumer
from services.coordinator.handling import Handling, Policies
from services.coordinator.ports import Clock, system_clock
from services.coordinator.reporting import Reporting
from services.coordinator.server import CoordinatorServicer
from services.coordinator.service import CoordinatorApi
from services.coordinator.settings import CoordinatorSettings

__all__ = ["MIGRATIONS", "VERSION_TABLE", "CoordinatorApp", "build", "run"]

# What the coordinator queues in its outbox (the relay decodes each row back into one of these).
OUTBOX_TYPES = (case_pb2.Case, case_pb2.Task, case_pb2.AuditRecord, publication_request_pb2.PublicationRequest)

_log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_coordinator"
Cleanup = Callable[[], Awaitable[None]]


def load_policies(settings: CoordinatorSettings) -> Policies:
    """The three policy files, validated; a bad file stops the start with the file and field named."""
    return Policies(
        load_routing(settings.routing_policy_file),
        load_playbooks(settings.playbooks_file),
        load_directory(settings.directory_file),
    )


def _specs(settings: CoordinatorSettings) -> list[TopicSpec]:
    """The topics the coordinator produces to or reads, with the standard configuration of their kind."""
    t = settings.topics
    standard = {spec.name: spec for spec in topic_specs(settings.kafka)}
    pairs = [
        (t.alerts, "qingfeng.alerts.v1"),
        (t.events, "qingfeng.events.v1"),
        (t.publications, "qingfeng.publications.v1"),
        (t.cases, "qingfeng.cases.v1"),
        (t.tasks, "qingfeng.tasks.v1"),
        (t.publication_requests, "qingfeng.publication-requests.v1"),
        (t.deadletter, "qingfeng.deadletter.v1"),
    ]
    if t.audit:
        pairs.append((t.audit, "qingfeng.audit.v1"))
    return [
        TopicSpec(name, standard[kind].partitions, standard[kind].replication, dict(TOPICS[kind]))
        for name, kind in pairs
    ]


@dataclass
class CoordinatorApp:
    settings: CoordinatorSettings
    handling: Handling
    api: CoordinatorApi
    consumer: InputConsumer
    relay_send: OutboxSender
    clock: Clock
    readiness: list[ReadinessCheck]
    cleanups: list[Cleanup] = field(default_factory=list)

    def services(self) -> list[tuple[Any, Callable[[Any], None]]]:
        servicer = CoordinatorServicer(self.api, Reporting(self.handling, self.clock), self.clock)
        return [
            (
                case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"],
                lambda s: case_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, s),
            )
        ]

    async def relay(self, stop: asyncio.Event) -> None:
        loops = self.settings.loops
        await run_relay(
            self.handling.store.sessions, self.relay_send, stop, batch_size=loops.relay_batch, idle_s=loops.relay_idle_s
        )

    async def deadlines(self, stop: asyncio.Event) -> None:
        """Fire due timers every ``deadline_every_s``; a database failure is logged and retried next round."""
        every = self.settings.loops.deadline_every_s
        while not stop.is_set():
            try:
                await self.handling.ensure_quarterly(self.clock())
                while await self.handling.fire_due(self.clock()) and not stop.is_set():
                    pass
            except Exception:
                _log.exception("deadline loop: firing failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    def background(self) -> list[Callable[[asyncio.Event], Any]]:
        return [self.consumer.run, self.relay, self.deadlines]


async def build(settings: CoordinatorSettings, *, clock: Clock = system_clock) -> CoordinatorApp:
    """Build and connect every adapter; on failure, close what was opened and re-raise."""
    cleanups: list[Cleanup] = []
    try:
        policies = load_policies(settings)
        await run_migrations(settings.database.url.get_secret_value(), MIGRATIONS, VERSION_TABLE)
        engine = create_engine(settings.database, application_name="qingfeng-coordinator")
        cleanups.append(engine.dispose)
        await ensure_topics(settings.kafka, _specs(settings))
        producer = Producer(settings.kafka)
        await producer.start()
        cleanups.append(producer.stop)
        t = settings.topics
        node = settings.node_name or f"{socket.gethostname()}:{os.getpid()}"
        store = SqlStore(engine, OutboxTopics(t.cases, t.tasks, t.publication_requests, t.audit), node=node)
        handling = Handling(store, policies)
        dead_letters = DeadLetterSender(producer, source="coordinator", topic=t.deadletter)
        consumer = InputConsumer(settings.kafka, t, settings.consumer, handling, dead_letters, clock)
        return CoordinatorApp(
            settings=settings,
            handling=handling,
            api=CoordinatorApi(handling, clock),
            consumer=consumer,
            relay_send=OutboxSender(producer, OUTBOX_TYPES),
            clock=clock,
            readiness=[kafka_ready(settings.kafka), sql_ready(engine)],
            cleanups=cleanups,
        )
    except BaseException:
        for cleanup in reversed(cleanups):
            await cleanup()
        raise


async def run(settings: CoordinatorSettings) -> None:
    """Run the coordinator until SIGTERM."""
    authenticate = credential_interceptor(settings.identity, env_prefix="QF_COORDINATOR_")  # no trust, no start
    app = await build(settings)
    try:
        server = build_server(settings.grpc, services=app.services(), interceptors=[authenticate])
    except BaseException:
        for cleanup in reversed(app.cleanups):
            await cleanup()
        raise
    serve_metrics(settings.metrics_port, host=settings.metrics_host)  # consumer lag, when QF_COORDINATOR_METRICS_PORT
    _log.info("coordinator starting", extra={"settings": settings.describe()})
    await run_until_stopped(
        server,
        readiness=app.readiness,
        background=app.background(),
        cleanups=list(reversed(app.cleanups)),
        grace_s=settings.grpc.shutdown_grace_s,
    )
