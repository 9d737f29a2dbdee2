"""Fixtures for the collector's integration tests: settings with topics, index and group of their own per test.

Every test gets unique topic names, an Elasticsearch index prefix and an indexer group id (through
``CollectorSettings``, exactly as a deployment would set them), all deleted afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import IndexNames, create_client, delete_family
from qingfeng.kafka import ensure_topics
from qingfeng.settings import ElasticsearchSettings, GrpcSettings, KafkaSettings

from services.collector.app import topic_specs_for
from services.collector.settings import CollectorSettings, CollectorTopics, IndexerSettings
from tests.services.collector.integration.helpers import IndexerKit


@pytest.fixture
async def settings(kafka_bootstrap: str, es_url: str) -> AsyncIterator[CollectorSettings]:
    run = uuid.uuid4().hex[:10]
    value = CollectorSettings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id=f"qftest-{run}", request_timeout_s=20),
        elasticsearch=ElasticsearchSettings(url=es_url, index_prefix=f"qftest-{run}"),
        topics=CollectorTopics(
            posts=f"qftest.{run}.posts.v1",
            posts_deadletter=f"qftest.{run}.posts.deadletter.v1",
            deadletter=f"qftest.{run}.deadletter.v1",
        ),
        indexer=IndexerSettings(
            group_id=f"qftest-{run}-indexer",
            batch_size=500,
            retry_backoff_s=0.2,
            # Its own (a test that needs it creates it): never the stack's, where a running grader publishes.
            post_events_topic=f"qftest.{run}.post-events.v1",
        ),
        grpc=GrpcSettings(port=0, plaintext=True),
    )
    await ensure_topics(value.kafka, topic_specs_for(value))
    yield value
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = value.topics
        await admin.delete_topics([topics.posts, topics.posts_deadletter, topics.deadletter])
        with contextlib.suppress(Exception):  # only the tests of the event-id join create it
            await admin.delete_topics([value.indexer.post_events_topic])
    finally:
        await admin.close()


@pytest.fixture
async def es(settings: CollectorSettings) -> AsyncIterator[AsyncElasticsearch]:
    client = create_client(settings.elasticsearch)
    try:
        yield client
    finally:
        await delete_family(client, IndexNames(settings.elasticsearch.index_prefix, "posts"))
        await client.close()


@pytest.fixture
def indexer_kit(settings: CollectorSettings) -> IndexerKit:
    """Posts, records and a ``PostIndexer`` for the indexer's tests, on this test's settings."""
    return IndexerKit(settings)
