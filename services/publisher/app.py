"""The publisher's composition root: migrates its database, loads its policies, builds the channel adapters, serves
gRPC and runs three loops: the publication-request consumer, the delivery worker and the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import uvicorn
from qingfeng.kafka import (
    PUBLICATION_REQUESTS,
    PUBLICATIONS,
    PUBLICATIONS_DEADLETTER,
    DeadLetterSender,
    OutboxSender,
    Producer,
    TopicSpec,
    ensure_topics,
    run_batches_resuming,
)
from qingfeng.kafka.topics import TOPICS
from qingfeng.metrics import serve_metrics
from qingfeng.readiness import kafka_ready, sql_ready
from qingfeng.rpc import build_server, credential_interceptor, run_until_stopped
from qingfeng.storage import create_engine, run_migrations, run_relay
from qingfeng.v1 import post_pb2, publication_pb2, publication_pb2_grpc

from services.publisher.adapters.policy_yaml import load_policies
from services.publisher.adapters.sql import SqlStore
from services.publisher.application import Publisher, Topics
from services.publisher.channels import ChannelBuilder, FeedSettings, SqlFeedStore, feed_app
from services.publisher.consumer import RequestConsumer
from services.publisher.core.delivery import RetryPolicy
from services.publisher.core.policy import Policies
from services.publisher.ports import ChannelAdapter, ChannelConfig, ChannelFactory
from services.publisher.server import PublisherServicer
from services.publisher.settings import PublisherSettings
from services.publisher.worker import DeliveryWorker

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "build_channels",
    "consume_requests",
    "retry_policy",
    "run",
    "topic_specs_for",
]

# What the publisher queues in its outbox (the relay decodes each row back into one of these).
OUTBOX_TYPES = (publication_pb2.Publication, post_pb2.DeadLetter)

_log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_publisher"


def build_channels(policies: Policies, factory: ChannelFactory, *, strict: bool) -> dict[str, ChannelAdapter]:
    """One adapter per enabled channel of the policy.

    A channel that cannot be built (a secret not set, an option invalid) stops the start when ``strict``; otherwise
    it is left out with an error naming the channel and the problem: publishing to it is refused as "not
    configured" and ``ListChannels`` shows it disabled, while the other channels work (a local suite has no tokens).
    """
    adapters: dict[str, ChannelAdapter] = {}
    for rule in policies.channels.values():
        if not rule.enabled:
            continue
        try:
            adapters[rule.id] = factory(ChannelConfig(id=rule.id, kind=rule.kind, options=dict(rule.options)))
        except ValueError as err:
            if strict:
                raise
            _log.error("channel %s left out: %s", rule.id, err)
    return adapters


def topic_specs_for(settings: PublisherSettings) -> list[TopicSpec]:
    """The publisher's topics under their configured names, with the standard topics' configuration."""
    kafka, topics = settings.kafka, settings.topics
    return [
        TopicSpec(name, partitions=kafka.partitions, replication=kafka.replication_factor, config=dict(TOPICS[std]))
        for name, std in (
            (topics.requests, PUBLICATION_REQUESTS),
            (topics.publications, PUBLICATIONS),
            (topics.deadletter, PUBLICATIONS_DEADLETTER),
        )
    ]


def retry_policy(settings: PublisherSettings) -> RetryPolicy:
    d = settings.delivery
    return RetryPolicy(max_attempts=d.max_attempts, base_s=d.backoff_base_s, max_s=d.backoff_max_s, lease_s=d.lease_s)


async def run(
    settings: PublisherSettings, *, channel_factory: ChannelFactory | None = None,
    channels: Mapping[str, ChannelAdapter] | None = None,
) -> None:  # fmt: skip
    """Run the publisher until SIGTERM. ``channels`` (tests) replaces the adapters built from the policy."""
    authenticate = credential_interceptor(settings.identity, env_prefix="QF_PUBLISHER_")  # no trust, no start
    p = settings.policies
    policies = load_policies(p.templates_file, p.signoff_file, p.channels_file)
    await run_migrations(settings.database.url.get_secret_value(), MIGRATIONS, VERSION_TABLE)
    engine = create_engine(settings.database, application_name="qingfeng-publisher")
    feed_store = SqlFeedStore(engine)
    factory = channel_factory or ChannelBuilder(feed_store=feed_store)
    adapters = (
        dict(channels) if channels is not None else build_channels(policies, factory, strict=settings.strict_channels)
    )
    topics = settings.topics
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    producer = Producer(settings.kafka)
    await producer.start()
    store = SqlStore(engine)
    publisher = Publisher(
        store, policies, adapters, topics=Topics(publications=topics.publications, deadletter=topics.deadletter)
    )
    worker = DeliveryWorker(publisher, retry_policy(settings), batch_size=settings.delivery.batch_size)
    dead_letters = DeadLetterSender(producer, source="publisher", topic=topics.deadletter)
    consumer = RequestConsumer(publisher, dead_letters.send, topic=topics.requests)
    send = OutboxSender(producer, OUTBOX_TYPES)

    async def consume(stop: asyncio.Event) -> None:
        await consume_requests(settings, consumer, stop)

    async def deliver(stop: asyncio.Event) -> None:
        await worker.run(stop, idle_s=settings.delivery.poll_s)

    async def relay(stop: asyncio.Event) -> None:
        await run_relay(store.sessions, send, stop, batch_size=settings.relay_batch, idle_s=settings.relay_idle_s)

    async def serve_feed(stop: asyncio.Event) -> None:
        await _serve_feed(settings, policies, feed_store, stop)

    async def close_channels() -> None:
        for adapter in adapters.values():
            close = getattr(adapter, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    servicer = PublisherServicer(publisher)
    services: list[tuple[Any, Callable[[Any], None]]] = [
        (
            publication_pb2.DESCRIPTOR.services_by_name["PublisherService"],
            lambda s: publication_pb2_grpc.add_PublisherServiceServicer_to_server(servicer, s),
        )
    ]
    server = build_server(settings.grpc, services=services, interceptors=[authenticate])
    serve_metrics(settings.metrics_port, host=settings.metrics_host)  # consumer lag, when QF_PUBLISHER_METRICS_PORT
    _log.info("publisher starting", extra={"settings": settings.describe(), "channels": sorted(adapters)})
    await run_until_stopped(
        server,
        readiness=[kafka_ready(settings.kafka), sql_ready(engine)],
        background=[consume, deliver, relay, serve_feed],
        cleanups=[close_channels, engine.dispose, producer.stop],
        grace_s=settings.grpc.shutdown_grace_s,
    )


async def consume_requests(settings: PublisherSettings, consumer: RequestConsumer, stop: asyncio.Event) -> None:
    """The publication requests until ``stop``; a failure (Kafka or the database down) is not the end of the
    process: the consumer resumes from its last commit after a pause (the requests are idempotent by id)."""
    await run_batches_resuming(
        settings.kafka,
        [settings.topics.requests],
        settings.group_id,
        consumer,
        stop,
        max_records=500,
        backoff_s=settings.consumer_retry_backoff_s,
        backoff_max_s=settings.consumer_retry_backoff_max_s,
        progress=lambda: consumer.handled,
        name="publication request consumer",
    )


async def _serve_feed(
    settings: PublisherSettings, policies: Policies, store: SqlFeedStore, stop: asyncio.Event
) -> None:
    """Serve the first enabled feed channel's Atom feed until ``stop`` (nothing when none or port 0).

    The feed is one outlet among several: when its port is taken the error is logged and the publisher carries on
    delivering (entries are still stored). The socket is bound here because uvicorn exits the process on a failed
    bind.
    """
    feed = next((c for c in policies.channels.values() if c.kind == "feed" and c.enabled), None)
    if feed is None or settings.feed.port == 0:
        await stop.wait()
        return
    host, port = settings.feed.host, settings.feed.port
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        _log.error("feed of %s not served: cannot listen on %s:%s: %s", feed.id, host, port, err)
        await stop.wait()
        return
    app = feed_app(store, FeedSettings.model_validate(dict(feed.options)))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    _log.info("feed of %s at http://%s:%s/feed.atom", feed.id, host, port)
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await task
        sock.close()
