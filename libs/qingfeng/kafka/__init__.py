"""Kafka for Qingfeng: topic setup, the idempotent protobuf producer, the batch consumer runner, dead letters.

Records carry protobuf payloads with ``event-type``, ``event-id``, ``content-type`` and W3C ``traceparent`` headers.
Producers are idempotent with ``acks=all``; consumers commit only after their handler's effect is durable.
"""

from qingfeng.kafka.batch_window import BatchWindow
from qingfeng.kafka.consumer import BatchHandler, run_batches, run_batches_resuming
from qingfeng.kafka.deadletter import (
    DEADLETTER_EVENT_TYPE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    DeadLetterSender,
    DeadLetterSpec,
    build_dead_letter,
)
from qingfeng.kafka.errors import KafkaHelperError, PayloadTooLargeError, TopicSetupError
from qingfeng.kafka.headers import CONTENT_TYPE, EVENT_ID, EVENT_TYPE, content_type_for
from qingfeng.kafka.outbox_sender import OutboxSender
from qingfeng.kafka.producer import Delivery, OutgoingRecord, Producer
from qingfeng.kafka.records import BadRecord, ParsedBatch, Record, parse, parse_batch
from qingfeng.kafka.topics import (
    ALERTS,
    AUDIT,
    CASES,
    DEADLETTER,
    EVENTS,
    POSTS,
    POSTS_DEADLETTER,
    PUBLICATION_REQUESTS,
    PUBLICATIONS,
    PUBLICATIONS_DEADLETTER,
    TASKS,
    TopicSpec,
    ensure_topics,
    topic_specs,
)

__all__ = [
    "ALERTS",
    "AUDIT",
    "CASES",
    "CONTENT_TYPE",
    "DEADLETTER",
    "DEADLETTER_EVENT_TYPE",
    "EVENTS",
    "EVENT_ID",
    "EVENT_TYPE",
    "ORIGINAL_OFFSET",
    "ORIGINAL_PARTITION",
    "ORIGINAL_TOPIC",
    "POSTS",
    "POSTS_DEADLETTER",
    "PUBLICATIONS",
    "PUBLICATIONS_DEADLETTER",
    "PUBLICATION_REQUESTS",
    "TASKS",
    "BadRecord",
    "BatchHandler",
    "BatchWindow",
    "DeadLetterSender",
    "DeadLetterSpec",
    "Delivery",
    "KafkaHelperError",
    "OutboxSender",
    "OutgoingRecord",
    "ParsedBatch",
    "PayloadTooLargeError",
    "Producer",
    "Record",
    "TopicSetupError",
    "TopicSpec",
    "build_dead_letter",
    "content_type_for",
    "ensure_topics",
    "parse",
    "parse_batch",
    "run_batches",
    "run_batches_resuming",
    "topic_specs",
]
