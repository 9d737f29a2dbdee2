"""The producer wedge against the real broker, without restarting it: the client's sequence number for a partition
is pushed ahead of the broker's (what a broker that lost its producer state sees), so the broker answers
OUT_OF_ORDER_SEQUENCE_NUMBER; the producer renews its client and the post is written once."""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber
from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.v1 import post_pb2

from services.collector.settings import CollectorSettings
from tests.services.collector.integration.helpers import read_topic

pytestmark = pytest.mark.integration


def _record(topic: str, post_id: str) -> OutgoingRecord:
    return OutgoingRecord(topic, post_id, post_pb2.Post(id=post_id), "post.collected", post_id)


async def _desynchronise(producer: Producer, topic: str, partition: int) -> None:
    """Make the client believe it already sent 5 more batches to the partition than the broker has seen."""
    txn = producer._producer._txn_manager  # aiokafka's idempotence state (no public way to reach it)
    txn.increment_sequence_number(TopicPartition(topic, partition), 5)


async def test_an_out_of_order_sequence_renews_the_producer_and_writes_each_post_once(
    settings: CollectorSettings,
) -> None:
    topic = settings.topics.posts
    async with Producer(settings.kafka) as producer:
        [first] = await producer.send_many([_record(topic, "w1")])
        await _desynchronise(producer, topic, first.partition)
        # Without renewal the same client keeps failing: prove the broker really refuses it.
        future = await producer._producer.send(topic, value=b"probe", key=b"w1")
        with pytest.raises(OutOfOrderSequenceNumber):
            await future
        deliveries = await producer.send_many([_record(topic, "w1"), _record(topic, "w2"), _record(topic, "w3")])
        assert producer.renewals == 1
        assert len(deliveries) == 3
        later = await producer.send_many([_record(topic, "w4")])  # the new client goes on working
        assert later[0].offset >= 0
    keys = Counter(key for key, _ in await read_topic(settings, topic, expect=5))
    assert keys == Counter({"w1": 2, "w2": 1, "w3": 1, "w4": 1})  # w1: the first send and the re-send asked for
