"""`qingfeng status`'s second half: how far each consumer group of the suite is behind, read from Kafka itself.

The lag of a partition is its end offset minus the group's committed offset: records written and not yet processed
and committed. It is read with Kafka's admin API (committed offsets) and a group-less consumer (end offsets), so it
is right even while the process that owns the group is down or stuck: that is when it matters (the indexer while
Elasticsearch is away, the grader after a kill). The processes export the same figure as the gauge
``qingfeng_kafka_consumer_lag`` on their ``/metrics`` port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

__all__ = [
    "SUITE_GROUPS",
    "SUITE_TOPIC_PREFIX",
    "GroupLag",
    "add_arguments",
    "default_bootstrap",
    "format_lags",
    "group_lags",
    "print_lags",
    "status",
]

# The consumer groups of the suite's processes, by their default ids (QF_<SERVICE>_…__GROUP_ID changes them).
SUITE_GROUPS: Final = ("collector-indexer", "grader", "grader-index", "coordinator", "publisher")
SUITE_TOPIC_PREFIX: Final = "qingfeng."
_TIMEOUT_MS: Final = 5_000


@dataclass(frozen=True)
class GroupLag:
    """One group's committed offsets against the end offsets, per partition it has committed on."""

    group: str
    # (topic, partition) -> (committed offset, end offset)
    partitions: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.lag(topic, partition) for topic, partition in self.partitions)

    def lag(self, topic: str, partition: int) -> int:
        committed, end = self.partitions[(topic, partition)]
        return max(0, end - committed)


def default_bootstrap() -> str:
    """The suite's Kafka: the collector's configured brokers, else the local stack's port."""
    configured = os.environ.get("QF_COLLECTOR_KAFKA__BOOTSTRAP_SERVERS")
    return configured or f"127.0.0.1:{os.environ.get('QF_STACK_KAFKA_PORT', '19092')}"


async def group_lags(bootstrap: str, groups: Sequence[str], *, topic_prefix: str = "") -> list[GroupLag]:
    """The lag of every partition of an existing topic (named ``topic_prefix…``) each group has committed on.

    A group keeps the offsets of deleted topics (tests' topics) until it expires; those are left out.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=_TIMEOUT_MS)
    await admin.start()
    try:
        topics = {t for t in await admin.list_topics() if t.startswith(topic_prefix)}
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            committed[group] = {
                tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0 and tp.topic in topics
            }
    finally:
        await admin.close()
    partitions = sorted({tp for offsets in committed.values() for tp in offsets})
    ends: dict[TopicPartition, int] = {}
    if partitions:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=_TIMEOUT_MS)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
    return [
        GroupLag(
            group,
            {
                (tp.topic, tp.partition): (offset, ends.get(tp, offset))
                for tp, offset in sorted(committed[group].items())
            },
        )
        for group in groups
    ]


def format_lags(lags: Sequence[GroupLag]) -> list[str]:
    """One line per group and topic: the topic's lag, then each partition's (``p0 12 p1 0 …``)."""
    lines = []
    for lag in lags:
        if not lag.partitions:
            lines.append(f"{lag.group:<18} -  (no committed offsets)")
            continue
        for topic in sorted({topic for topic, _ in lag.partitions}):
            mine = [p for t, p in lag.partitions if t == topic]
            total = sum(lag.lag(topic, p) for p in mine)
            parts = " ".join(f"p{p} {lag.lag(topic, p):,}" for p in mine)
            lines.append(f"{lag.group:<18} {topic:<28} lag {total:,}  ({parts})")
    return lines


def print_lags(bootstrap: str, groups: Sequence[str], out: IO[str], *, topic_prefix: str = "") -> int:
    """Print the lag table; 0, or 1 when Kafka could not be asked (said on the table's line)."""
    print(f"consumer lag (end offset - committed), from Kafka at {bootstrap}:", file=out)
    try:
        work = group_lags(bootstrap, groups, topic_prefix=topic_prefix)
        lags = asyncio.run(asyncio.wait_for(work, timeout=3 * _TIMEOUT_MS / 1000))
    except (KafkaError, OSError, TimeoutError) as err:
        print(f"  unknown: Kafka did not answer ({type(err).__name__}: {err})", file=out)
        return 1
    for line in format_lags(lags):
        print(f"  {line}", file=out)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng status`."""
    parser.add_argument(
        "--kafka", metavar="HOST:PORT", default=None, help="brokers to read the lag from (default: the local stack)"
    )
    parser.add_argument(
        "--group",
        action="append",
        default=None,
        metavar="ID",
        help=f"consumer group to show (repeatable; default: {', '.join(SUITE_GROUPS)})",
    )
    parser.add_argument(
        "--topic-prefix",
        default=SUITE_TOPIC_PREFIX,
        help=f"only topics named so (default {SUITE_TOPIC_PREFIX!r}, the suite's; '' for every topic)",
    )
    parser.add_argument("--no-lag", action="store_true", help="only the processes, without asking Kafka")


def status(args: argparse.Namespace, processes: Callable[[], int]) -> int:
    """The processes' table, then the lag table; exit 0 only if every process is alive (the lag is information)."""
    code = processes()
    if not args.no_lag:
        groups = args.group or SUITE_GROUPS
        print_lags(args.kafka or default_bootstrap(), groups, sys.stdout, topic_prefix=args.topic_prefix)
    return code
