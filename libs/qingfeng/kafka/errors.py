"""Errors raised by the Kafka helpers.

- ``KafkaHelperError``: base of everything below.
    - ``PayloadTooLargeError``: a record is larger than the producer's ``max_request_size``; the caller dead-letters
      it (with a truncated payload) instead of retrying, because retrying can never succeed.
    - ``TopicSetupError``: a topic could not be created, or exists with a different partition count than its spec
      (keys would then land on other partitions than the code expects).
"""

from __future__ import annotations

__all__ = ["KafkaHelperError", "PayloadTooLargeError", "TopicSetupError"]


class KafkaHelperError(Exception):
    """Base class of the errors raised by ``qingfeng.kafka``."""


class PayloadTooLargeError(KafkaHelperError):
    """Raised by the producer when a serialised record exceeds ``max_request_size``."""

    def __init__(self, topic: str, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"record for {topic} is about {size_bytes} bytes, above the limit of {limit_bytes}")
        self.topic = topic
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class TopicSetupError(KafkaHelperError):
    """Raised by ``ensure_topics`` when a topic cannot be created or does not match its spec."""
