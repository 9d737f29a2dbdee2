"""Batch-level produce: records built into one aiokafka record batch per partition instead of one ``send`` each.

``AIOKafkaProducer.send`` costs a coroutine, a metadata wait, a partitioner call and a future per record, and the
accumulator resolves one more future and builds one ``RecordMetadata`` per record on acknowledgement (~15-20 µs a
record in the collector). Here the records of one ``Producer.send_many`` call are grouped by partition, appended to
``create_batch()`` builders (which close when ``max_batch_size`` is reached, so a partition may get several) and
handed over with ``send_batch``: one future per batch, whose base offset plus each record's offset in the batch is
the record's offset.

What stays as with ``send``:

- the partition: the client's own partitioner over the topic's partitions, as ``send`` calls it (aiokafka's
  ``DefaultPartitioner``: murmur2 of the key, the Java client's choice); for that partitioner the same murmur2 is
  computed here a word at a time instead of a byte at a time (same value, tested against aiokafka's);
- order: a partition's batches go out in the records' input order, and the idempotent producer keeps them in that
  order on the broker (one batch in flight per partition);
- the size check: a record larger than ``max_request_size`` fails alone with ``MessageSizeTooLargeError`` as
  ``send`` raises it, the others are sent;
- acks=all and idempotence: a batch is drained, numbered and retried by the same sender as ``send``'s batches;
- failures are per batch: every record of a batch that failed (or could not be handed over) gets its error, the
  records of the other batches their deliveries.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

__all__ = [
    "BatchSlot",
    "EncodedRecord",
    "hand_over",
    "murmur2",
    "murmur2_many",
    "partition_chooser",
    "partitions_chooser",
    "send_batches",
]

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
# Below this many keys of one length, numpy's per-operation overhead costs more than the loop in Python.
_VECTOR_MIN: Final = 16


class EncodedRecord(NamedTuple):
    """A record as bytes, ready to append to a batch. (Tuples: one of each per produced record, built in one C call
    where a frozen dataclass sets its fields one ``object.__setattr__`` at a time.)"""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class BatchSlot(NamedTuple):
    """Where a record went: its batch's settlement future (resolved with the batch's ``RecordMetadata``) and its
    offset relative to the batch's base offset."""

    future: asyncio.Future[Any]
    relative_offset: int


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as aiokafka's ``murmur2`` computes it, with
    the 4-byte words unpacked at once (a post id hashes about 3x faster)."""
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = words * 4
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """``[murmur2(key) for key in keys]``, the keys of one length hashed together in numpy (uint32 arithmetic wraps
    as ``& _MASK`` does): a post id costs ~5 µs in the loop above, well under 1 µs here in a call of hundreds."""
    out = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    for length, members in by_length.items():
        if len(members) < _VECTOR_MIN:
            for i in members:
                out[i] = murmur2(keys[i])
            continue
        for i, h in zip(members, _murmur2_same_length([keys[i] for i in members], length).tolist(), strict=True):
            out[i] = h
    return out


def _murmur2_same_length(keys: list[bytes], length: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    m = np.uint32(_M)
    data = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    words = length // 4
    h = np.full(len(keys), (_SEED ^ length) & _MASK, dtype=np.uint32)
    if words:
        unpacked = np.ascontiguousarray(data[:, : words * 4]).view("<u4")
        for j in range(words):
            k = unpacked[:, j] * m
            k ^= k >> np.uint32(24)
            k *= m
            h *= m
            h ^= k
    tail = length & 3
    if tail:
        base = words * 4
        if tail == 3:
            h ^= data[:, base + 2].astype(np.uint32) << np.uint32(16)
        if tail >= 2:
            h ^= data[:, base + 1].astype(np.uint32) << np.uint32(8)
        h ^= data[:, base].astype(np.uint32)
        h *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return h


def partitions_chooser(client: Any, topic: str) -> Callable[[Sequence[bytes | None]], list[int]]:
    """``choose(keys) -> partitions``: ``partition_chooser``'s choice for each key, the default partitioner's
    murmur2 computed over the keys at once (``murmur2_many``)."""
    one = partition_chooser(client, topic)
    partitioner = client._partitioner
    if not (isinstance(partitioner, DefaultPartitioner) or partitioner is DefaultPartitioner):
        return lambda keys: [one(key) for key in keys]
    all_partitions: list[int] = list(client._metadata.partitions_for_topic(topic))
    count = len(all_partitions)

    def default(keys: Sequence[bytes | None]) -> list[int]:
        keyed = [key for key in keys if key is not None]
        hashes = iter(murmur2_many(keyed))
        return [one(None) if key is None else all_partitions[(next(hashes) & 0x7FFFFFFF) % count] for key in keys]

    return default


def partition_chooser(client: Any, topic: str) -> Any:
    """``choose(key) -> partition`` for ``topic`` as ``client.send`` picks it (its metadata must be loaded)."""
    cluster = client._metadata  # aiokafka's ClusterMetadata, what send() consults
    all_partitions: list[int] = list(cluster.partitions_for_topic(topic))  # as send() lists them
    available = list(cluster.available_partitions_for_topic(topic))
    partitioner = client._partitioner
    if isinstance(partitioner, DefaultPartitioner) or partitioner is DefaultPartitioner:
        count = len(all_partitions)

        def default(key: bytes | None) -> int:
            if key is None:  # random, as the default partitioner does it
                chosen: int = partitioner(None, all_partitions, available)
                return chosen
            return all_partitions[(murmur2(key) & 0x7FFFFFFF) % count]

        return default
    return lambda key: partitioner(key, all_partitions, available)


async def hand_over(
    client: Any,
    records: Sequence[EncodedRecord],
    max_request_size: int,
    locks: dict[tuple[str, int], asyncio.Lock],
) -> list[BatchSlot | Exception]:
    """Append ``records`` to per-partition batches and hand them to ``client`` (an ``AIOKafkaProducer``).

    Returns, per record in input order, its ``BatchSlot`` or the error that kept it from being sent (too large, or
    its batch could not be enqueued). Awaiting the slots' futures waits for the acknowledgements.

    ``locks`` (one per partition, shared by every call on the client) let one call at a time wait in ``send_batch``
    for a partition. That wait is a loop in aiokafka (``add_batch``: wait until the partition's last batch is
    drained, try again) that takes the time already waited off its timeout again on every round, so with tens of
    concurrent calls on one partition a call lost the race often enough to time out long before the request timeout
    (``KafkaTimeoutError``, seen with 40 slices of 500 in flight); behind the lock, in FIFO order, each call waits
    for one drain at a time.
    """
    out: list[BatchSlot | Exception | None] = [None] * len(records)
    choosers: dict[str, Callable[[Sequence[bytes | None]], list[int]]] = {}
    to_place: dict[str, list[int]] = {}  # per topic, the records that fit, in input order
    unknown: dict[str, Exception] = {}  # topics whose metadata could not be had: their records fail with it
    for i, record in enumerate(records):
        chooser = choosers.get(record.topic)
        if chooser is None:
            if record.topic in unknown:
                out[i] = unknown[record.topic]
                continue
            try:
                await client.client._wait_on_metadata(record.topic)  # what send() awaits first
            except Exception as err:  # as send() raises it for each record of the topic
                out[i] = unknown[record.topic] = err
                continue
            chooser = choosers[record.topic] = partitions_chooser(client, record.topic)
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(record.key, record.value, record.headers)
        if size > max_request_size:  # send() refuses such a record alone, with this error
            out[i] = MessageSizeTooLargeError(
                f"The message is {size} bytes when serialized which is larger than the maximum request size you "
                "have configured with the max_request_size configuration"
            )
            continue
        to_place.setdefault(record.topic, []).append(i)
    # The partitions of a topic's records in one call (murmur2 over the keys at once), then grouped in input order
    # as one record at a time did (the same partitions in the same order, each with its records in input order).
    partition_of: dict[int, int] = {}
    for topic, placed in to_place.items():
        partition_of.update(zip(placed, choosers[topic]([records[i].key for i in placed]), strict=True))
    by_partition: dict[tuple[str, int], list[int]] = {}
    for i in sorted(partition_of):
        by_partition.setdefault((records[i].topic, partition_of[i]), []).append(i)
    # Build every partition's batches, then hand them over one partition after the other in turn: send_batch waits
    # until the partition's previous batch was taken by the sender, meanwhile the other partitions' are taken too.
    queues: list[tuple[str, int, list[tuple[Any, list[int]]]]] = []
    for (topic, partition), indices in by_partition.items():
        batches: list[tuple[Any, list[int]]] = []
        builder: Any = client.create_batch()
        members: list[int] = []
        for i in indices:
            record = records[i]
            if builder.append(timestamp=None, key=record.key, value=record.value, headers=record.headers) is None:
                batches.append((builder, members))  # full (the builder closed itself); the record opens the next
                builder, members = client.create_batch(), []
                builder.append(timestamp=None, key=record.key, value=record.value, headers=record.headers)
            members.append(i)
        batches.append((builder, members))
        queues.append((topic, partition, batches))
    for round_ in range(max((len(batches) for _, _, batches in queues), default=0)):
        for topic, partition, batches in queues:
            if round_ >= len(batches):
                continue
            builder, members = batches[round_]
            lock = locks.get((topic, partition))
            if lock is None:
                lock = locks[(topic, partition)] = asyncio.Lock()
            try:
                async with lock:
                    future = await client.send_batch(builder, topic, partition=partition)
            except Exception as err:  # one partition's trouble must not keep the others from being sent
                for i in members:
                    out[i] = err
                continue
            # The builder numbered its records from 0 in the order they were appended.
            for offset, i in enumerate(members):
                out[i] = BatchSlot(future, offset)
    return [slot if slot is not None else RuntimeError("not sent") for slot in out]


async def send_batches(
    client: Any,
    records: Sequence[EncodedRecord],
    max_request_size: int,
    locks: dict[tuple[str, int], asyncio.Lock],
    unsettled: set[asyncio.Future[Any]] | None,
) -> list[tuple[str, int, int] | Exception]:
    """``hand_over`` the records, then wait for every batch: per record, ``(topic, partition, offset)`` or its error.

    Each batch's outcome is copied to a future of ours, added to ``unsettled`` until it settles: the producer's
    renewal fails those (``_ClientReplaced``), while aiokafka's own futures stay untouched and are settled (their
    errors retrieved) by the closing client.
    """
    slots = await hand_over(client, records, max_request_size, locks)
    ours: dict[int, asyncio.Future[Any]] = {}
    loop = asyncio.get_running_loop()
    for slot in slots:
        if isinstance(slot, BatchSlot) and id(slot.future) not in ours:
            mine = ours[id(slot.future)] = loop.create_future()
            slot.future.add_done_callback(functools.partial(_copy_outcome, mine))
            if unsettled is not None:
                unsettled.add(mine)
                mine.add_done_callback(unsettled.discard)
    if ours:
        await asyncio.wait(ours.values())
    out: list[tuple[str, int, int] | Exception] = []
    # A batch's records follow each other in ``slots`` (mostly): its outcome is read once per run of them.
    batch: Any = None
    failed: Exception | None = None
    topic, partition, base = "", 0, 0
    for slot in slots:
        if not isinstance(slot, BatchSlot):
            out.append(slot)
            continue
        if slot.future is not batch:
            batch = slot.future
            future = ours[id(batch)]
            error = future.exception()
            if error is not None:
                failed = error if isinstance(error, Exception) else RuntimeError(repr(error))
            else:
                failed = None
                meta = future.result()  # the batch's RecordMetadata: its offset is the batch's base offset
                topic, partition, base = meta.topic, meta.partition, meta.offset
        if failed is not None:
            out.append(failed)
        else:
            out.append((topic, partition, base + slot.relative_offset))
    return out


def _copy_outcome(target: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    """Settle ``target`` as ``source`` settled (unless a renewal failed it first); retrieves ``source``'s error."""
    error: BaseException | None = asyncio.CancelledError() if source.cancelled() else source.exception()
    if target.done():
        return
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
