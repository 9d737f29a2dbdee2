"""Fixtures of the publisher's integration tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from qingfeng.kafka import ensure_topics
from qingfeng.settings import KafkaSettings

from services.publisher.app import topic_specs_for
from services.publisher.settings import PublisherSettings, PublisherTopics


@pytest.fixture
async def kafka(kafka_bootstrap: str) -> AsyncIterator[tuple[KafkaSettings, dict[str, str]]]:
    run = uuid.uuid4().hex[:10]
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, client_id=f"qftest-{run}", partitions=1,
                             request_timeout_s=20)  # fmt: skip
    names = {
        "requests": f"qftest.{run}.publication-requests.v1",
        "publications": f"qftest.{run}.publications.v1",
        "deadletter": f"qftest.{run}.publications-deadletter.v1",
    }
    publisher_settings = PublisherSettings(kafka=settings, topics=PublisherTopics(**names))
    await ensure_topics(settings, topic_specs_for(publisher_settings))
    yield settings, names
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(list(names.values()))
    finally:
        await admin.close()
