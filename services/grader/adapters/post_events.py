"""Posts carry their event: the grader's index role writes ``event_id`` onto a graded post's document only when the
document does not carry it already.

The grade role publishes each batch's post -> event assignments on the post-events topic. The collector's indexer
reads that topic too and indexes each post once with its event id (``services/collector/event_ids.py``); the index
role (``indexer.py``) hands the assignments here some seconds later (``assign_delay_s``), and per chunk of posts:

- where each post is, and its ``event_id`` there: an ``mget`` (``_source: event_id``) against the concrete current
  write index, then the ids search over the read alias for those not found there (older indices after a rollover);
- a post found with the same event id is skipped (``already_assigned``): the indexer wrote it, nothing to do;
- one found without it or with another one (a re-assignment after a merge, or indexed before its assignment
  arrived) gets a partial ``update`` in the index that holds it;
- one **not indexed yet** is looked up again until ``wait_until`` (the index role passes the batch's publication
  time + ``missing_wait_s``): the indexer is behind, and will index it with its event id. Only the oldest chunk is
  looked up, every ``poll_s``, doubling up to 16 times that while none of it turns up, and the rest once some of it
  did. Only past that time does it get a stub, an upsert of ``{id, event_id}`` into the write alias, which the
  indexer's own ``doc_as_upsert`` update then completes (it merges, so the event id stays; see
  ``services/collector/indexer.py``).

Why wait rather than write the stub at once: a stub turns the indexer's later ``create`` into a conflict and a
second write, an ``update`` whose realtime get makes Elasticsearch refresh on the spot. Once the indexer was a few
seconds behind, every post went that way, Elasticsearch's CPU per post rose, and the indexer fell further behind
(the soak, 2026-12-01: 5,810 gets/s at 2,315 posts/s). The look-ups are not realtime for the same reason: a
document not refreshed yet reads as not indexed, and the next look-up, after the next refresh, finds it.

A post that joins another event later is written again with the new id, and every write is idempotent, so a
redelivery after a crash repeats it harmlessly (or finds it done). A vanished document is skipped, one the cluster
refuses for good (400) is logged and skipped, as the events index does; other failures raise ``Unavailable``: the
index role commits nothing, backs off and writes them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError, TransportError
from elasticsearch.serializer import JsonSerializer
from prometheus_client import Counter
from qingfeng.elastic import IndexNames

from services.grader.errors import Unavailable

__all__ = ["ElasticPostEvents"]

_log = logging.getLogger(__name__)

# Ids per lookup and bulk request: well under index.max_result_window and the terms limit.
_CHUNK: Final = 2000
_POLL_BACKOFF: Final = 16  # a poll that found none of its posts doubles the wait, up to 16 x poll_s
_GONE: Final = 404
_REFUSED: Final = 400
# Only what is read back: the full bulk response (index, version, shards, seq_no … per item) and search hits
# (score …) were parsed for every post, a sizeable share of the grader's CPU per post.
_BULK_FIELDS: Final = ["items.*._id", "items.*.status", "items.*.error.type"]
_HIT_FIELDS: Final = ["hits.hits._id", "hits.hits._index"]
_GET_FIELDS: Final = ["docs._id", "docs._index", "docs.found", "docs._source.event_id"]
# On the index role's /metrics: how the assignments ended, and how many posts the collector's indexer had not written
# yet when first looked up (a rising rate of stubs: the indexer is further behind than missing_wait_s).
ASSIGNED = Counter(
    "qingfeng_grader_post_event_ids",
    "Post event id assignments by outcome: already (the indexer wrote it), updated, stub (written before the post)",
    ["outcome"],
)
WAITED = Counter("qingfeng_grader_post_event_ids_waited", "Posts not indexed yet when their assignment was applied")
# What the client's own serializer makes of what orjson refuses (a lone surrogate in a hostile id).
_JSON: Final = JsonSerializer()


def _chunks(items: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    return [items[start : start + _CHUNK] for start in range(0, len(items), _CHUNK)]


def _dumps(value: dict[str, Any]) -> bytes:
    """One NDJSON line: ``orjson`` (the same bytes as the client's serializer, in a fraction of the time)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON.dumps(value)


class ElasticPostEvents:
    """Writes post id → event id assignments onto the posts documents of one index prefix (what is missing)."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        posts: IndexNames,
        *,
        refresh: bool = False,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._es = es
        self._posts = posts
        self._refresh = refresh
        self._poll_s = poll_s
        self._clock = clock
        self.written = 0  # assignments written (updates and stubs)
        self.already_assigned = 0  # assignments found on their documents already (nothing written)
        self.stubs = 0  # posts written before their document existed (not indexed by wait_until)
        self.waited = 0  # posts not indexed at the first look-up (looked up again)

    async def assign(self, assignments: Mapping[str, str], *, wait_until: float | None = None) -> None:
        """Write each post's event id where it differs (see the module docstring); a post not indexed yet is waited
        for until ``wait_until`` (epoch seconds; None: not at all). Raises ``Unavailable`` when the cluster fails."""
        pending = [(post_id, event_id) for post_id, event_id in assignments.items() if post_id and event_id]
        try:
            # One wait for the whole batch: waiting chunk by chunk made each chunk wait for its own refresh.
            missing = await self._look(pending, elsewhere=True)
            self.waited += len(missing)
            WAITED.inc(len(missing))
            interval = self._poll_s
            while missing:
                left = 0.0 if wait_until is None else wait_until - self._clock()
                if left <= 0:
                    for chunk in _chunks(missing):
                        await self._write_stubs(chunk)
                    return
                await asyncio.sleep(min(interval, left))
                # Only the oldest chunk until the indexer reached some of it, less often while it does not: looking
                # up every missing post of a long lag every second was itself a load on the cluster the indexer
                # waited for (the soak's indexer fell further behind after the Elasticsearch restart).
                probe = missing[:_CHUNK]
                still = await self._write_found(probe, elsewhere=False)
                if len(still) == len(probe):
                    interval = min(interval * 2, self._poll_s * _POLL_BACKOFF)
                    continue
                interval = self._poll_s
                missing = still + await self._look(missing[_CHUNK:], elsewhere=False)
        except (ApiError, TransportError) as err:
            raise Unavailable(f"posts index {self._posts.write_alias}: {type(err).__name__}: {err}") from err

    async def _look(self, items: list[tuple[str, str]], *, elsewhere: bool) -> list[tuple[str, str]]:
        return [m for chunk in _chunks(items) for m in await self._write_found(chunk, elsewhere=elsewhere)]

    async def _write_index(self) -> str | None:
        """The concrete index the write alias writes to (None: no posts family yet)."""
        try:
            response = await self._es.indices.get_alias(name=self._posts.write_alias)
        except NotFoundError:
            return None
        indices: dict[str, Any] = dict(response.body)
        for index, entry in indices.items():
            alias = entry.get("aliases", {}).get(self._posts.write_alias, {})
            if alias.get("is_write_index") or len(indices) == 1:
                return index
        return None

    async def _current(self, index: str, post_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Index and event id ("" when none) of every post in the write index, refreshed ones only (not realtime:
        see the module docstring)."""
        response = await self._es.mget(
            index=index,
            ids=post_ids,
            source=["event_id"],
            realtime=False,
            filter_path=_GET_FIELDS,
        )
        found: dict[str, tuple[str, str]] = {}
        for doc in response.body.get("docs", []):
            if doc.get("found"):
                found[str(doc["_id"])] = (str(doc["_index"]), str((doc.get("_source") or {}).get("event_id") or ""))
        return found

    async def _where(self, post_ids: list[str]) -> dict[str, str]:
        """The concrete index of every post indexed and refreshed (older indices after a rollover)."""
        response = await self._es.search(
            index=self._posts.read_alias,
            query={"ids": {"values": post_ids}},
            size=len(post_ids),
            source=False,
            ignore_unavailable=True,
            allow_no_indices=True,
            filter_path=_HIT_FIELDS,
        )
        hits: list[dict[str, Any]] = response.body.get("hits", {}).get("hits", [])
        return {str(hit["_id"]): str(hit["_index"]) for hit in hits}

    async def _write_found(self, chunk: list[tuple[str, str]], *, elsewhere: bool) -> list[tuple[str, str]]:
        """Update the posts found whose event id differs; return those not indexed (or not refreshed) yet.
        ``elsewhere``: look in the older indices too (a post waited for is not written there later)."""
        write_index = await self._write_index()
        current = await self._current(write_index, [post_id for post_id, _ in chunk]) if write_index else {}
        where = {post_id: index for post_id, (index, _) in current.items()}
        others = [post_id for post_id, _ in chunk if post_id not in current] if elsewhere else []
        if others:
            where.update(await self._where(others))
        operations: list[bytes] = []
        missing: list[tuple[str, str]] = []
        for post_id, event_id in chunk:
            known = current.get(post_id)
            if known is not None and known[1] == event_id:
                self.already_assigned += 1
                ASSIGNED.labels("already").inc()
                continue
            index = where.get(post_id)
            if index is None:
                missing.append((post_id, event_id))
                continue
            operations.append(_dumps({"update": {"_index": index, "_id": post_id}}))
            operations.append(_dumps({"doc": {"event_id": event_id}}))
        await self._bulk(operations)
        ASSIGNED.labels("updated").inc(len(operations) // 2)
        return missing

    async def _write_stubs(self, missing: list[tuple[str, str]]) -> None:
        operations: list[bytes] = []
        for post_id, event_id in missing:
            # require_alias: a posts family nobody created yet must not be auto-created as a plain index named
            # like the write alias (the collector's ensure_index would then refuse to start); skipped as gone.
            operations.append(
                _dumps({"update": {"_index": self._posts.write_alias, "_id": post_id, "require_alias": True}})
            )
            operations.append(_dumps({"doc": {"id": post_id, "event_id": event_id}, "doc_as_upsert": True}))
        await self._bulk(operations)
        self.stubs += len(missing)
        ASSIGNED.labels("stub").inc(len(missing))

    async def _bulk(self, operations: list[bytes]) -> None:
        if not operations:
            return
        # the client sends bytes lines as they are (its NDJSON serializer only joins them)
        response = await self._es.bulk(
            operations=operations,  # type: ignore[arg-type]
            refresh=self._refresh,
            filter_path=_BULK_FIELDS,
        )
        failed = []
        for item in response.body.get("items", []):
            result = item.get("update", {})
            status = int(result.get("status", 0))
            why = f"{result.get('_id')}: {status} {(result.get('error') or {}).get('type', '')}"
            if status == _REFUSED:  # the document itself is wrong; writing it again cannot help
                _log.error("posts index refused an event id: %s", why)
            elif status >= 300 and status != _GONE:  # deleted meanwhile, or no posts family yet: nothing to mark
                failed.append(why)
        if failed:
            raise Unavailable(f"{len(failed)} of {len(operations) // 2} post event ids not written, first {failed[0]}")
        self.written += len(operations) // 2
