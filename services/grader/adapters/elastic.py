"""The events index (``EventIndex``) over the shared bulk writer: one document per event, ``_id`` = event id.

Documents are upserted through the events write alias (the family does not roll over, so an event has one
document). Written by the grader's index role (``indexer.py``) from the events topic. Re-indexing the same snapshot
is idempotent, which is what a redelivery after a crash does. A document the cluster refuses for good (400: a
mapping conflict) is logged and skipped, since re-grading cannot fix it and the snapshot is still on Kafka; anything
else (unreachable, 429/5xx after the writer's retries) raises ``Unavailable``: the index role commits nothing, backs
off and writes the batch again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import Refresh, bulk_index
from qingfeng.v1 import event_pb2

from services.grader.convert import event_document
from services.grader.errors import Unavailable

__all__ = ["ElasticEventIndex"]

_log = logging.getLogger(__name__)

_REFUSED: Final = 400


class ElasticEventIndex:
    """``EventIndex`` writing to one write alias."""

    def __init__(self, es: AsyncElasticsearch, alias: str, *, refresh: Refresh = False) -> None:
        self._es = es
        self._alias = alias
        self._refresh = refresh
        self.indexed = 0

    async def index(self, events: Sequence[event_pb2.Event]) -> None:
        if not events:
            return
        # The last snapshot of an event in the list wins, as it would in two consecutive requests.
        latest = {e.id: e for e in events}
        docs = [(event_id, event_document(e)) for event_id, e in latest.items()]
        try:
            result = await bulk_index(self._es, self._alias, docs, refresh=self._refresh)
        except Exception as err:  # the writer retries itself; what escapes is an outage
            raise Unavailable(f"events index {self._alias}: {type(err).__name__}: {err}") from err
        transient = [f for f in result.failed if f.status != _REFUSED]
        if transient:
            first = transient[0]
            raise Unavailable(
                f"{len(transient)} of {len(docs)} events not indexed into {self._alias}: "
                f"{first.status} {first.error_type}: {first.reason}"
            )
        for failure in result.failed:
            _log.error("events index refused %s: %s %s", failure.id, failure.error_type, failure.reason)
        self.indexed += result.indexed
