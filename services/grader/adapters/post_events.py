"""Posts carry their event: the grader's index role writes ``event_id`` onto each graded post's document.

The grade role publishes each batch's post -> event assignments on the post-events topic; the index role
(``indexer.py``) hands them here. The collector's indexer owns the posts documents; the grader only adds one field.
The two consume different topics, so either may come first:

- the post is indexed already: a partial ``update`` of its document in the index that holds it (looked up through
  the read alias first, since after a rollover it may be an older index than the write index);
- it is not indexed yet: an upsert of ``{id, event_id}`` into the write index, which the indexer's own
  ``doc_as_upsert`` update then completes (it merges, so the event id stays; see ``services/collector/indexer.py``).

A post that joins another event later (a merge, a re-assignment) is written again with the new id, and the write is
idempotent, so a redelivery after a crash repeats it harmlessly. A vanished document is skipped, one the cluster
refuses for good (400) is logged and skipped, as the events index does; other failures raise ``Unavailable``: the
index role commits nothing, backs off and writes them again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from elasticsearch.serializer import JsonSerializer
from qingfeng.elastic import IndexNames

from services.grader.errors import Unavailable

__all__ = ["ElasticPostEvents"]

_log = logging.getLogger(__name__)

# Ids per lookup and bulk request: well under index.max_result_window and the terms limit.
_CHUNK: Final = 2000
_GONE: Final = 404
_REFUSED: Final = 400
# Only what is read back: the full bulk response (index, version, shards, seq_no … per item) and search hits
# (score …) were parsed for every post, a sizeable share of the grader's CPU per post.
_BULK_FIELDS: Final = ["items.*._id", "items.*.status", "items.*.error.type"]
_HIT_FIELDS: Final = ["hits.hits._id", "hits.hits._index"]
# What the client's own serializer makes of what orjson refuses (a lone surrogate in a hostile id).
_JSON: Final = JsonSerializer()


def _dumps(value: dict[str, Any]) -> bytes:
    """One NDJSON line: ``orjson`` (the same bytes as the client's serializer, in a fraction of the time)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON.dumps(value)


class ElasticPostEvents:
    """Writes post id → event id assignments onto the posts documents of one index prefix."""

    def __init__(self, es: AsyncElasticsearch, posts: IndexNames, *, refresh: bool = False) -> None:
        self._es = es
        self._posts = posts
        self._refresh = refresh
        self.written = 0

    async def assign(self, assignments: Mapping[str, str]) -> None:
        """Write each post's event id (see the module docstring); raises ``Unavailable`` when the cluster fails."""
        items = [(post_id, event_id) for post_id, event_id in assignments.items() if post_id and event_id]
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            try:
                await self._write(chunk)
            except (ApiError, TransportError) as err:
                raise Unavailable(f"posts index {self._posts.write_alias}: {type(err).__name__}: {err}") from err

    async def _where(self, post_ids: list[str]) -> dict[str, str]:
        """The concrete index of every post already indexed."""
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

    async def _write(self, chunk: list[tuple[str, str]]) -> None:
        where = await self._where([post_id for post_id, _ in chunk])
        operations: list[bytes] = []
        for post_id, event_id in chunk:
            index = where.get(post_id)
            if index is not None:
                operations.append(_dumps({"update": {"_index": index, "_id": post_id}}))
                operations.append(_dumps({"doc": {"event_id": event_id}}))
            else:
                # require_alias: a posts family nobody created yet must not be auto-created as a plain index named
                # like the write alias (the collector's ensure_index would then refuse to start); skipped as gone.
                operations.append(
                    _dumps({"update": {"_index": self._posts.write_alias, "_id": post_id, "require_alias": True}})
                )
                operations.append(_dumps({"doc": {"id": post_id, "event_id": event_id}, "doc_as_upsert": True}))
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
            raise Unavailable(f"{len(failed)} of {len(chunk)} post event ids not written, first {failed[0]}")
        self.written += len(chunk)
