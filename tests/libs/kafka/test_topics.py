"""Topic creation at start: idempotent, and checked against the partition count the code expects."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from qingfeng.kafka import EVENTS, POSTS, TopicSetupError, TopicSpec, ensure_topics, topic_specs
from qingfeng.kafka.topics import TOPICS
from qingfeng.settings import KafkaSettings


def test_standard_topics_are_versioned_and_events_compacted() -> None:
    assert all(name.startswith("qingfeng.") and name.endswith(".v1") for name in TOPICS)
    specs = {s.name: s for s in topic_specs(KafkaSettings(partitions=6, replication_factor=1))}
    assert set(specs) == set(TOPICS)
    assert specs[EVENTS].config["cleanup.policy"] == "compact"
    assert specs[POSTS].partitions == 6
    with pytest.raises(ValueError, match=r"qingfeng\.nope\.v1"):
        topic_specs(KafkaSettings(), "qingfeng.nope.v1")


@pytest.mark.integration
async def test_ensure_topics_is_idempotent_and_checks_partitions(kafka_settings: KafkaSettings) -> None:
    name = f"qftest.topics.{uuid.uuid4().hex[:12]}.v1"
    compacted = f"qftest.snap.{uuid.uuid4().hex[:12]}.v1"
    specs = [TopicSpec(name, partitions=3), TopicSpec(compacted, partitions=2, config={"cleanup.policy": "compact"})]
    await ensure_topics(kafka_settings, specs)
    await ensure_topics(kafka_settings, specs)  # second start: already there, fine

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([name, compacted])}
        (configs,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, compacted)])
        assert len(described[name]["partitions"]) == 3
        assert len(described[compacted]["partitions"]) == 2
        entries = {e["config_names"]: e["config_value"] for e in configs.to_object()["resources"][0]["config_entries"]}
        assert entries["cleanup.policy"] == "compact"

        with pytest.raises(TopicSetupError, match="has 3 partitions, the code expects 4"):
            await ensure_topics(kafka_settings, [TopicSpec(name, partitions=4)])
    finally:
        await admin.delete_topics([name, compacted])
        await admin.close()
