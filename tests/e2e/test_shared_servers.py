"""``drop_run`` leaves the shared servers as a run found them: everything a service creates under the run's prefix
(index family with its template and aliases, topics, a consumer group with committed offsets) is gone afterwards,
and a neighbouring run's names are untouched."""

from __future__ import annotations

import secrets

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from qingfeng.elastic import create_client, ensure_index
from qingfeng.kafka import TopicSpec, ensure_topics
from qingfeng.settings import ElasticsearchSettings, KafkaSettings

from tests.shared_servers import drop_run_async, find_run

pytestmark = pytest.mark.integration


async def _create_run(kafka_bootstrap: str, es_url: str, prefix: str) -> None:
    """What a suite's processes create at start: index families, topics, and a group that committed an offset."""
    es = create_client(ElasticsearchSettings(url=es_url))
    try:
        for family in ("posts", "events"):
            await ensure_index(es, prefix, family)
    finally:
        await es.close()
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=1, request_timeout_s=20)
    await ensure_topics(
        kafka, [TopicSpec(f"{prefix}.posts", partitions=1), TopicSpec(f"{prefix}.alerts", partitions=1)]
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=f"{prefix}-grader", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(f"{prefix}.posts", 0)])
        await consumer.commit({TopicPartition(f"{prefix}.posts", 0): OffsetAndMetadata(0, "")})
    finally:
        await consumer.stop()


async def test_drop_run_removes_everything_of_its_run_and_nothing_else(kafka_bootstrap: str, es_url: str) -> None:
    mine, neighbour = f"qf-e2e-{secrets.token_hex(4)}", f"qf-e2e-{secrets.token_hex(4)}"
    try:
        await _create_run(kafka_bootstrap, es_url, mine)
        await _create_run(kafka_bootstrap, es_url, neighbour)
        before = await find_run(kafka_bootstrap, es_url, mine)
        assert before.indices == (f"{mine}-events-000001", f"{mine}-posts-000001")
        assert set(before.aliases) >= {f"{mine}-posts", f"{mine}-posts-read"}
        assert before.templates == (f"{mine}-events", f"{mine}-posts")
        assert before.topics == (f"{mine}.alerts", f"{mine}.posts")
        assert before.groups == (f"{mine}-grader",)

        dropped = await drop_run_async(kafka_bootstrap, es_url, mine)
        assert dropped == before
        assert not await find_run(kafka_bootstrap, es_url, mine), "drop_run checks this itself; checked again"
        theirs = await find_run(kafka_bootstrap, es_url, neighbour)
        assert theirs.describe() == before.describe().replace(mine, neighbour), "another run's names are untouched"
    finally:
        await drop_run_async(kafka_bootstrap, es_url, mine)  # after a failure above; a no-op after the drop
        await drop_run_async(kafka_bootstrap, es_url, neighbour)
    assert not await find_run(kafka_bootstrap, es_url, neighbour)


async def test_drop_run_refuses_what_is_not_a_test_run_on_loopback(kafka_bootstrap: str, es_url: str) -> None:
    with pytest.raises(ValueError, match="per-run test prefix"):
        await drop_run_async(kafka_bootstrap, es_url, "qingfeng-posts")
    with pytest.raises(ValueError, match="per-run test prefix"):
        await drop_run_async(kafka_bootstrap, es_url, "qf-")
    with pytest.raises(ValueError, match="loopback only"):
        await drop_run_async("10.0.0.1:9092", es_url, f"qf-e2e-{secrets.token_hex(4)}")


async def test_drop_run_fails_naming_what_a_live_process_still_holds(kafka_bootstrap: str, es_url: str) -> None:
    """The guard can fail: a consumer still in its group (a process not stopped) keeps the group alive, and
    ``drop_run`` says so instead of passing quietly."""
    prefix = f"qf-e2e-{secrets.token_hex(4)}"
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, partitions=1, request_timeout_s=20)
    await ensure_topics(kafka, [TopicSpec(f"{prefix}.posts", partitions=1)])
    # No auto-commit: a final commit on close would retry forever once its topic is deleted.
    consumer = AIOKafkaConsumer(
        f"{prefix}.posts", bootstrap_servers=kafka_bootstrap, group_id=f"{prefix}-grader", enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=3000)  # joined: the group has a member now
        with pytest.raises(AssertionError, match=f"groups: {prefix}-grader"):
            await drop_run_async(kafka_bootstrap, es_url, prefix, wait_s=3)
    finally:
        await consumer.stop()  # leaves the group, which can then be deleted
        await drop_run_async(kafka_bootstrap, es_url, prefix)
    assert not await find_run(kafka_bootstrap, es_url, prefix)
