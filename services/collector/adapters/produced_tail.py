"""At start, the ids of the posts topic's tail join the pipeline's memory of produced ids (issue 13).

The database learns a slice's ids only after Kafka acknowledged it (``SqlProducedIds``), so a kill -9 between the
acknowledgement and that write left the restarted collector ignorant of up to a few hundred posts, and the client's
re-sent chunk produced them again. The topic is the truth of what was produced: before serving ``ImportPosts`` or
running sources, the collector reads the keys of the last ``pipeline.recall_tail`` records of its posts topic that
carry the pipeline's event type (dead letters live on another topic and are not counted) and remembers them.

Bounded by ``pipeline.recall_tail_timeout_s`` (what was read by then counts). Kafka failing here is logged and the
collector starts with its database alone, as before: the producer needs Kafka anyway and says so.
"""

from __future__ import annotations

import logging

from qingfeng.kafka.tail_keys import read_tail_keys

from services.collector.pipeline import POST_EVENT_TYPE, Pipeline
from services.collector.settings import CollectorSettings

__all__ = ["recall_produced_tail"]

_log = logging.getLogger(__name__)


async def recall_produced_tail(settings: CollectorSettings, pipeline: Pipeline) -> int:
    """Remember the ids of the posts topic's tail in ``pipeline``; returns how many were new to it."""
    limits = settings.pipeline
    if limits.recall_tail == 0:
        return 0
    topic = settings.topics.posts
    try:
        tail = await read_tail_keys(
            settings.kafka,
            topic,
            last=min(limits.recall_tail, limits.remember_ids),
            timeout_s=limits.recall_tail_timeout_s,
            event_type=POST_EVENT_TYPE,
        )
    except Exception as err:  # an optimisation of idempotent consumers, not a condition of starting
        _log.warning("tail of %s not read, starting without it: %s: %s", topic, type(err).__name__, err)
        return 0
    added = pipeline.recall_produced(tail.keys)
    _log.info(
        "recalled %d produced post ids (%d new) from %d records of %s's tail over %d partitions in %.2f s%s",
        len(tail.keys), added, tail.records, topic, tail.partitions, tail.elapsed_s,
        "" if tail.complete else f" (stopped after {limits.recall_tail_timeout_s:g} s, the rest not read)",
    )  # fmt: skip
    return added
