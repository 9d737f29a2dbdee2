"""The consumer of ``qingfeng.publication-requests.v1``: each coordinator request becomes one draft.

A batch is handled record by record: decode, check, and create the draft (its own transaction, audited). The runner
commits the offsets only after the handler returned, so every draft of the batch is committed first; a replayed
request finds the draft made for its id and changes nothing (at-least-once in, exactly-once effect). Records that
cannot become a draft (undecodable, no case, unknown kind) go to the publisher's dead-letter topic with the reason,
never silently away.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from qingfeng.kafka import BadRecord, DeadLetterSpec, Record, parse_batch
from qingfeng.v1 import post_pb2, publication_request_pb2

from services.publisher import convert
from services.publisher.application import Publisher, RequestFacts
from services.publisher.core.model import Actor
from services.publisher.errors import InvalidArgument

__all__ = ["REQUEST_ACTOR", "RequestConsumer", "request_facts"]

_log = logging.getLogger(__name__)
# Drafts made from requests are written by the coordinator's playbook; people sign them off.
REQUEST_ACTOR = Actor("coordinator", "case_management")

DeadLetters = Callable[[Sequence[DeadLetterSpec]], Awaitable[object]]


def request_facts(message: publication_request_pb2.PublicationRequest) -> RequestFacts:
    """The request as the application takes it; InvalidArgument when it cannot become a draft."""
    if not message.id:
        raise InvalidArgument.of("id", "required")
    if not message.case_id:
        raise InvalidArgument.of("case_id", "required")
    kind = convert.KIND_OF.get(message.kind)
    if kind is None:
        raise InvalidArgument.of("kind", "a draft kind is required")
    return RequestFacts(
        id=message.id,
        case_id=message.case_id,
        event_id=message.event_id,
        kind=kind,
        level=convert.level_name(message.level),
        facts=dict(message.facts),
        due_at=convert.to_datetime(message.due_at) if message.HasField("due_at") else None,
        requested_at=convert.to_datetime(message.requested_at) if message.HasField("requested_at") else None,
        requested_by=message.requested_by.id or "coordinator",
        reply_to_post_id=message.reply_to_post_id,
        playbook_step=message.playbook_step,
    )


class RequestConsumer:
    """The batch handler given to ``qingfeng.kafka.run_batches_resuming``."""

    def __init__(self, publisher: Publisher, dead_letters: DeadLetters, *, topic: str) -> None:
        self.publisher = publisher
        self.dead_letters = dead_letters
        self.topic = topic
        self.handled = 0  # records handled: the resume loop's measure of progress

    async def __call__(self, records: list[Record]) -> None:
        batch = parse_batch(records, publication_request_pb2.PublicationRequest)
        rejected: list[DeadLetterSpec] = [DeadLetterSpec.from_bad_record(b, source="publisher") for b in batch.bad]
        for record, message in batch.good:
            with record.traced():
                try:
                    facts = request_facts(message)
                except InvalidArgument as err:
                    bad = BadRecord(record, post_pb2.DEAD_LETTER_REASON_INVALID, str(err))
                    rejected.append(DeadLetterSpec.from_bad_record(bad, source="publisher"))
                    continue
                draft, created = await self.publisher.create_from_request(facts, REQUEST_ACTOR)
                _log.info("publication request %s → draft %s (%s)", facts.id, draft.id, "new" if created else "replay")
        if rejected:
            await self.dead_letters(rejected)
        self.handled += len(records)
