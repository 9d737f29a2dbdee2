"""Topic names and their creation at start.

Every topic the suite uses is named here, once, with its version suffix: a breaking change to a payload gets a new
topic (``.v2``) that runs side by side with the old one until its consumers move. Services call ``ensure_topics`` at
start with the specs of the topics they produce to; creation is idempotent and checks that an existing topic has the
partition count the code expects, because the key → partition mapping (and so per-entity ordering) depends on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from qingfeng.kafka.errors import TopicSetupError
from qingfeng.kafka.security import client_kwargs
from qingfeng.settings import KafkaSettings

__all__ = [
    "ALERTS",
    "AUDIT",
    "CASES",
    "DEADLETTER",
    "EVENTS",
    "POSTS",
    "POSTS_DEADLETTER",
    "POST_EVENTS",
    "PUBLICATIONS",
    "PUBLICATIONS_DEADLETTER",
    "PUBLICATION_REQUESTS",
    "TASKS",
    "TOPICS",
    "TopicSpec",
    "ensure_topics",
    "partition_ids",
    "topic_specs",
]

_log = logging.getLogger(__name__)

# Normalised posts from the collector, keyed by post id.
POSTS: Final = "qingfeng.posts.v1"
# Input the collector could not turn into a post (bad feed item, oversized page …), with the reason.
POSTS_DEADLETTER: Final = "qingfeng.posts.deadletter.v1"
# Event snapshots from the grader, keyed by event id; compacted so the latest snapshot per event is kept forever.
EVENTS: Final = "qingfeng.events.v1"
# One record per warning-level change of an event, keyed by event id.
ALERTS: Final = "qingfeng.alerts.v1"
# Which event each graded post belongs to (``PostEventAssignments``, a batch per record) from the grader, for its
# index role to write onto the posts documents. One partition: a later record may re-assign a post and must win.
POST_EVENTS: Final = "qingfeng.post-events.v1"
# Case changes from the coordinator (opened, routed, acknowledged, escalated, closed), keyed by case id.
CASES: Final = "qingfeng.cases.v1"
# Tasks assigned to partner agencies and their supervision (督办), keyed by task id.
TASKS: Final = "qingfeng.tasks.v1"
# What the coordinator asks the publisher to release for a case (``PublicationRequest``), keyed by case id.
PUBLICATION_REQUESTS: Final = "qingfeng.publication-requests.v1"
# What the publisher released where (and retractions/corrections), keyed by publication id.
PUBLICATIONS: Final = "qingfeng.publications.v1"
# Deliveries to channels that failed for good, with the reason, keyed by publication id.
PUBLICATIONS_DEADLETTER: Final = "qingfeng.publications.deadletter.v1"
# The stream copy of the coordinator's tamper-evident audit log, keyed by the audited entity id.
AUDIT: Final = "qingfeng.audit.v1"
# Records any other consumer could not process (decode errors, wrong type), with the reason.
DEADLETTER: Final = "qingfeng.deadletter.v1"

_DAY_MS: Final = 24 * 3600 * 1000

# Per-topic configuration; partitions and replication come from ``KafkaSettings``.
TOPICS: Final[Mapping[str, Mapping[str, str]]] = {
    POSTS: {"retention.ms": str(7 * _DAY_MS)},
    POSTS_DEADLETTER: {"retention.ms": str(30 * _DAY_MS)},
    EVENTS: {"cleanup.policy": "compact", "min.compaction.lag.ms": str(3600 * 1000)},
    ALERTS: {"retention.ms": str(30 * _DAY_MS)},
    POST_EVENTS: {"retention.ms": str(7 * _DAY_MS)},
    CASES: {"retention.ms": str(30 * _DAY_MS)},
    TASKS: {"retention.ms": str(30 * _DAY_MS)},
    PUBLICATION_REQUESTS: {"retention.ms": str(30 * _DAY_MS)},
    PUBLICATIONS: {"retention.ms": str(30 * _DAY_MS)},
    PUBLICATIONS_DEADLETTER: {"retention.ms": str(30 * _DAY_MS)},
    AUDIT: {"retention.ms": str(365 * _DAY_MS)},
    DEADLETTER: {"retention.ms": str(30 * _DAY_MS)},
}


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the code expects it: name, partition count, replication and topic-level configuration."""

    name: str
    partitions: int
    replication: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(settings: KafkaSettings, *names: str) -> list[TopicSpec]:
    """Specs for the named standard topics (all of them when no name is given), sized from ``settings``."""
    chosen = names or tuple(TOPICS)
    unknown = [n for n in chosen if n not in TOPICS]
    if unknown:
        raise ValueError(f"unknown topic(s) {unknown}; add them to qingfeng.kafka.topics.TOPICS")
    return [
        TopicSpec(
            name=n,
            partitions=settings.partitions,
            replication=settings.replication_factor,
            config=dict(TOPICS[n]),
        )
        for n in chosen
    ]


async def partition_ids(
    settings: KafkaSettings, topic: str, *, wait_s: float = 0.0, client: str = "admin"
) -> list[int]:
    """The partition ids of ``topic``, sorted; [] when it has none (it does not exist) after ``wait_s`` seconds of
    asking again (the metadata of a topic created a moment ago can lag). ``client`` suffixes the client id."""
    # A consumer without subscription knows no topic's metadata; the admin client asks for exactly this one.
    admin = AIOKafkaAdminClient(
        **client_kwargs(settings),
        client_id=f"{settings.client_id}-{client}",
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    try:
        await admin.start()  # inside: a start that fails still has its connections closed
        deadline = time.monotonic() + wait_s
        while True:
            described = await admin.describe_topics([topic])
            found = sorted(
                int(p["partition"])
                for entry in described
                if entry["topic"] == topic and entry["error_code"] == 0
                for p in entry["partitions"]
            )
            if found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def ensure_topics(settings: KafkaSettings, specs: Sequence[TopicSpec], *, timeout_s: float = 30.0) -> None:
    """Create the topics that are missing and check that every topic has its spec's partition count.

    Idempotent: an existing topic is fine as long as its partition count matches. Raises ``TopicSetupError``
    otherwise, or when the broker refuses a creation or the topics do not become available within ``timeout_s``.
    """
    if not specs:
        return
    admin = AIOKafkaAdminClient(
        **client_kwargs(settings),
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication,
                    topic_configs=dict(s.config),
                )
                for s in specs
            ],
            timeout_ms=int(timeout_s * 1000),
        )
        for entry in response.topic_errors:
            topic, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else None
            if code == 0:
                _log.info("created topic %s", topic)
            elif code != TopicAlreadyExistsError.errno:
                raise TopicSetupError(f"cannot create topic {topic}: {for_code(code).__name__} {message or ''}")
        await _verify_partitions(admin, specs, deadline=time.monotonic() + timeout_s)
    finally:
        await admin.close()


async def _verify_partitions(admin: Any, specs: Sequence[TopicSpec], *, deadline: float) -> None:
    # Right after creation the metadata can still say LEADER_NOT_AVAILABLE / UNKNOWN_TOPIC: retry until the deadline.
    pending = {s.name: s for s in specs}
    last_problem = ""
    while pending:
        try:
            described = await admin.describe_topics(list(pending))
        except KafkaError as err:
            described, last_problem = [], repr(err)
        for topic in described:
            spec = pending.get(topic["topic"])
            if spec is None:
                continue
            if topic["error_code"] != 0:
                last_problem = f"{spec.name}: {for_code(topic['error_code']).__name__}"
                continue
            partitions = topic["partitions"]
            if any(p["error_code"] != 0 for p in partitions):
                last_problem = f"{spec.name}: a partition has no leader yet"
                continue
            if len(partitions) != spec.partitions:
                raise TopicSetupError(
                    f"topic {spec.name} has {len(partitions)} partitions, the code expects {spec.partitions}"
                )
            del pending[spec.name]
        if pending:
            if time.monotonic() >= deadline:
                raise TopicSetupError(f"topics not available in time: {sorted(pending)} ({last_problem})")
            await asyncio.sleep(0.2)
