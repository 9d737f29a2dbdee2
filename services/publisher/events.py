"""What the publisher tells the rest of the suite, queued in the caller's transaction (transactional outbox).

``Publication`` events go to ``qingfeng.publications.v1`` keyed by publication id, with the event id
``<publication id>:<row version>`` (each state of a publication is announced once, however often a transaction is
retried). A publication that failed for good also becomes a ``DeadLetter`` (reason DELIVERY_FAILED, the
``Publication`` as payload) on the publisher's dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from qingfeng.kafka import CONTENT_TYPE, PUBLICATIONS, PUBLICATIONS_DEADLETTER, content_type_for
from qingfeng.storage import add_to_outbox
from qingfeng.v1 import post_pb2, publication_pb2
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Topics", "queue_dead_letter", "queue_publication"]


@dataclass(frozen=True)
class Topics:
    publications: str = PUBLICATIONS
    deadletter: str = PUBLICATIONS_DEADLETTER


async def queue_publication(
    s: AsyncSession, message: publication_pb2.Publication, *, version: int, event_type: str, topic: str, now: datetime
) -> None:
    await add_to_outbox(
        s,
        topic=topic,
        key=message.id,
        event_type=event_type,
        event_id=f"{message.id}:{version}",
        payload=message.SerializeToString(),
        headers={CONTENT_TYPE: content_type_for(message)},
        now=now,
    )


async def queue_dead_letter(
    s: AsyncSession, message: publication_pb2.Publication, *, version: int, topics: Topics, now: datetime
) -> None:
    letter = post_pb2.DeadLetter(
        topic=topics.publications,
        key=message.id,
        reason=post_pb2.DEAD_LETTER_REASON_DELIVERY_FAILED,
        message=message.last_error,
        payload=message.SerializeToString(),
        source="publisher",
        attempts=message.attempts,
    )
    letter.occurred_at.FromDatetime(now)
    await add_to_outbox(
        s,
        topic=topics.deadletter,
        key=message.id,
        event_type="deadletter.recorded",
        event_id=f"{message.id}:{version}:dead",
        payload=letter.SerializeToString(),
        headers={CONTENT_TYPE: content_type_for(letter)},
        now=now,
    )
