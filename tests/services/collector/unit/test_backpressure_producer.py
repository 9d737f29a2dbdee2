"""The producer wedge: a fatal sequence error renews the client and the refused records are sent again, once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.partitioner import DefaultPartitioner
from qingfeng.kafka import OutgoingRecord, Producer
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2


@dataclass(frozen=True)
class _Meta:
    topic: str
    partition: int
    offset: int


class _Sender:
    def __init__(self, task: asyncio.Future[None] | None) -> None:
        self.sender_task = task


class FakeClient:
    """An aiokafka producer in memory. ``refuse``: the error every send's future fails with (a wedged client)."""

    def __init__(self, log: list[tuple[int, bytes]], number: int, refuse: Exception | None, dead: bool) -> None:
        self.hang: set[bytes] = set()  # keys whose futures never resolve (a batch stuck in a wedged client)
        self.log = log
        self.number = number
        self.refuse = refuse
        self.stopped = False
        self._closed = False
        task: asyncio.Future[None] | None = None
        if dead:  # the sender routine died with the error, as aiokafka's does on OutOfOrderSequenceNumber
            task = asyncio.get_running_loop().create_future()
            task.set_exception(OutOfOrderSequenceNumber())
        self._sender = _Sender(task)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True
        self._closed = True

    async def send(self, topic: str, *, value: bytes, key: bytes | None, headers: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if key in self.hang:
            return future
        if self.refuse is not None:
            future.set_exception(type(self.refuse)())
        else:
            self.log.append((self.number, key or b""))
            future.set_result(_Meta(topic, 0, len(self.log) - 1))
        return future


class _Builder:
    """aiokafka's BatchBuilder in memory: records appended in order, closed after ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.keys: list[bytes] = []
        self.capacity = capacity

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes, headers: Any) -> Any:
        if len(self.keys) >= self.capacity:
            return None
        self.keys.append(key or b"")
        return _Meta("", 0, len(self.keys) - 1)


class _Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return {0}


class _Client:
    async def _wait_on_metadata(self, topic: str) -> None:
        pass


class FakeBatchClient(FakeClient):
    """The same client with aiokafka's batch API (``create_batch``/``send_batch``): one future per batch of 2."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._metadata = _Cluster()
        self._partitioner = DefaultPartitioner()
        self.client = _Client()

    def create_batch(self) -> _Builder:
        return _Builder(2)

    async def send_batch(self, batch: _Builder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.hang.intersection(batch.keys):
            return future
        if self.refuse is not None:
            future.set_exception(type(self.refuse)())
        else:
            base = len(self.log)
            self.log.extend((self.number, key) for key in batch.keys)
            future.set_result(_Meta(topic, partition, base))
        return future


class Factory:
    """Builds the n-th client with the n-th behaviour (then well-behaved ones)."""

    def __init__(self, *behaviours: tuple[Exception | None, bool], batched: bool = False) -> None:
        self.behaviours = list(behaviours)
        self.clients: list[FakeClient] = []
        self.log: list[tuple[int, bytes]] = []
        self.kind = FakeBatchClient if batched else FakeClient

    def __call__(self, **_: Any) -> FakeClient:
        refuse, dead = self.behaviours.pop(0) if self.behaviours else (None, False)
        client = self.kind(self.log, len(self.clients), refuse, dead)
        self.clients.append(client)
        return client


@pytest.fixture(params=[False, True], ids=["send-per-record", "batches"])
def batched(request: pytest.FixtureRequest) -> bool:
    """Every test runs with a client of each kind: one send() per record, and one record batch per partition."""
    return bool(request.param)


def _records(*ids: str) -> list[OutgoingRecord]:
    return [OutgoingRecord("t.posts", i, post_pb2.Post(id=i), "post.collected", i) for i in ids]


async def test_out_of_order_sequence_renews_the_client_and_sends_the_refused_records_once(batched: bool) -> None:
    factory = Factory((OutOfOrderSequenceNumber(), False), batched=batched)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    deliveries = await producer.send_many(_records("a", "b", "c"))
    assert [d.offset for d in deliveries] == [0, 1, 2]
    assert factory.log == [(1, b"a"), (1, b"b"), (1, b"c")]  # all on the second client, each once
    assert producer.renewals == 1
    assert factory.clients[0].stopped
    await producer.stop()


async def test_a_dead_sender_is_replaced_before_records_are_handed_to_it(batched: bool) -> None:
    factory = Factory((None, True), batched=batched)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    await producer.send_many(_records("a"))
    assert factory.log == [(1, b"a")]
    assert producer.renewals == 1
    await producer.stop()


async def test_concurrent_calls_renew_a_failed_client_once(batched: bool) -> None:
    factory = Factory((UnknownProducerId(), False), batched=batched)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    await asyncio.gather(producer.send_many(_records("a", "b")), producer.send_many(_records("c")))
    assert producer.renewals == 1
    assert sorted(key for _, key in factory.log) == [b"a", b"b", b"c"]
    await producer.stop()


async def test_a_client_that_stays_fatal_gives_up_with_the_error(batched: bool) -> None:
    factory = Factory(*[(OutOfOrderSequenceNumber(), False)] * 5, batched=batched)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    with pytest.raises(OutOfOrderSequenceNumber):
        await producer.send_many(_records("a"))
    assert producer.renewals == 2
    assert factory.log == []
    await producer.stop()


async def test_an_ordinary_broker_error_does_not_renew(batched: bool) -> None:
    factory = Factory((KafkaConnectionError(), False), batched=batched)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    with pytest.raises(KafkaConnectionError):
        await producer.send_many(_records("a"))
    assert producer.renewals == 0
    await producer.stop()


async def test_a_record_stuck_in_the_replaced_client_is_sent_again_by_its_own_call(batched: bool) -> None:
    factory = Factory((OutOfOrderSequenceNumber(), False), batched=batched)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    factory.clients[0].hang.add(b"stuck")
    stuck = asyncio.create_task(producer.send_many(_records("stuck")))
    await asyncio.sleep(0)
    await producer.send_many(_records("a"))  # fails on the old client, renews it
    delivered = await asyncio.wait_for(stuck, timeout=5)  # without the renewal's clean-up it would wait for ever
    assert len(delivered) == 1
    assert sorted(factory.log) == [(1, b"a"), (1, b"stuck")]
    assert producer.renewals == 1
    await producer.stop()


async def test_a_topic_without_metadata_fails_its_records_and_the_others_are_sent() -> None:
    factory = Factory(batched=True)
    producer = Producer(KafkaSettings(), client_factory=factory)
    await producer.start()
    client = factory.clients[0]

    async def metadata(topic: str) -> None:
        if topic == "t.gone":
            raise KafkaConnectionError()

    client.client._wait_on_metadata = metadata  # type: ignore[attr-defined]
    gone = [OutgoingRecord("t.gone", i, post_pb2.Post(id=i), "post.collected", i) for i in ("x", "y")]
    outcomes = await producer.send_each([gone[0], *_records("a"), gone[1]])
    assert [type(o).__name__ for o in outcomes] == ["KafkaConnectionError", "Delivery", "KafkaConnectionError"]
    assert factory.log == [(0, b"a")]
    with pytest.raises(KafkaConnectionError):
        await producer.send_many(gone)
    await producer.stop()
