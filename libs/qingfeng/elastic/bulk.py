"""The bulk writer: documents keyed by entity id, written through an alias with the bulk API.

Each document's ``_id`` is its entity id and the operation is ``index`` (create or replace), so writing the same
batch twice (a Kafka redelivery) leaves one document per entity: re-indexing is idempotent. With ``merge=True`` the
fields given replace theirs and the document's other fields stay (the posts indexer merges, so the ``event_id`` the
grader wrote survives a re-indexed post), equally idempotent: each document is sent as ``create``, and, when it
exists already (409), again as ``update`` with ``doc_as_upsert``.
Items rejected with 429 (bulk queue full) or 503 (shard unavailable) are retried with exponential backoff, as is a
whole request that failed that way or on the connection; anything else is reported per item and never raised, so
the caller decides (most dead-letter the item and commit).

Each document is serialised once into the bytes of its NDJSON line: that line measures the request size for chunking
and is the request body, so the client does not serialise it a second time (before, the size estimate and the client
each ran ``json.dumps`` over every document). It is serialised with ``orjson`` (on the shared data's 57,576 post
documents: the same bytes as the client's serializer for every one, in less than half the time), and with the
client's own serializer when ``orjson`` refuses a document (an integer beyond 64 bits, a lone surrogate, a type it
does not know), so nothing that indexed before fails now. A caller may give a document as those bytes already (the
posts indexer builds its lines itself, ``services/collector/documents.py``); they are sent as they are. A request's
body is joined here into one ``bytes`` (the action lines made from a prefix and the id as JSON), which the client
sends as it is: given a list of lines, its NDJSON serializer appended them to a buffer one at a time (issue 12: the
per-line list, action dicts and join were about a tenth of the indexer's CPU).

Throughput (issue 12): with ``concurrency`` > 1 up to that many requests are in flight at once, and ``docs`` is read
lazily, a request's worth at a time, so a caller that builds its documents in a generator builds the next request
while Elasticsearch indexes the previous ones (on the posts indexer the Python side and Elasticsearch each worked
while the other waited). Each request retries on its own; the result is the same as sending them one after another
(the ids of one call are distinct, so no two requests in flight touch the same document). Responses are asked for
with ``filter_path`` (status, result and error of each item): Elasticsearch renders, and the client parses, about a
fifth of the bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson
from elasticsearch import ApiError, AsyncElasticsearch, ConnectionError, ConnectionTimeout
from elasticsearch.serializer import JsonSerializer

__all__ = ["BulkFailure", "BulkResult", "Document", "Refresh", "bulk_index"]

_log = logging.getLogger(__name__)

Refresh = Literal[False, True, "wait_for"]

_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
# A ``create`` of a document that exists (version_conflict_engine_exception).
_EXISTS: Final = 409
_Op = Literal["index", "create", "update"]
# What bulk_index reads of a response: each item keeps its place (and its op name), with only these fields.
_FILTER_PATH: Final = "items.*.status,items.*.result,items.*.error"
# The serializer AsyncElasticsearch uses by default (compact, UTF-8, datetimes as ISO 8601), for what orjson refuses.
_JSON: Final = JsonSerializer()
# (id, its document's serialised JSON)
_Doc = tuple[str, bytes]
# A document as callers give it: a mapping, or its JSON already serialised (the posts indexer builds the bytes).
Document = Mapping[str, Any] | bytes
# The action line of each operation is this prefix, the id as JSON, and ``}}``: what ``orjson`` makes of
# ``{op: {"_id": id}}``, without building the two dicts per document.
_ACTIONS: Final[dict[str, bytes]] = {op: b'{"' + op.encode() + b'":{"_id":' for op in ("index", "create", "update")}

# Requests stay under 1 MiB: aiohttp (under the Elasticsearch client) warns with a ResourceWarning that a larger
# bytes body may block the event loop while it is written, and a test suite that treats warnings as errors then
# sees a ConnectionError. 500 microblog posts fit; long articles make more, smaller requests.
REQUEST_BYTES = 1_000_000


@dataclass(frozen=True)
class BulkFailure:
    """One document Elasticsearch did not take, with the reason it gave."""

    id: str
    status: int
    error_type: str
    reason: str


@dataclass(frozen=True)
class BulkResult:
    """Counts of one ``bulk_index`` call: ``indexed`` = ``created`` + ``updated``; ``failed`` lists the rest."""

    indexed: int
    created: int
    updated: int
    failed: tuple[BulkFailure, ...]
    retries: int

    @property
    def ok(self) -> bool:
        return not self.failed


async def bulk_index(
    es: AsyncElasticsearch,
    alias: str,
    docs: Iterable[tuple[str, Document]],
    *,
    refresh: Refresh = False,
    chunk_docs: int = 500,
    chunk_bytes: int = REQUEST_BYTES,
    max_retries: int = 4,
    backoff_s: float = 0.5,
    max_backoff_s: float = 8.0,
    merge: bool = False,
    concurrency: int = 1,
) -> BulkResult:
    """Index ``(id, document)`` pairs into ``alias`` and report what happened to each.

    A document is a mapping, or ``bytes``: its JSON, serialised by the caller (one object, no newline), sent as is.

    ``refresh``: False (default, searchable within the refresh interval), ``"wait_for"`` (return once searchable),
    or True (force a refresh at the end; tests only, it is expensive). Requests are split at ``chunk_docs``
    documents or about ``chunk_bytes`` of JSON; up to ``concurrency`` of them are in flight at once. The ids of one
    call must be distinct when ``concurrency`` > 1 (two requests in flight would race on the same document).
    """
    refresh_each: Refresh = "wait_for" if refresh == "wait_for" else False
    retry = _Retry(max_retries, backoff_s, max_backoff_s)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    # One task per request, at most ``concurrency`` unfinished; results are summed in request order.
    tasks: list[asyncio.Task[_Written]] = []
    try:
        for chunk in _chunks(docs, chunk_docs, chunk_bytes):
            while sum(not task.done() for task in tasks) >= concurrency:
                await asyncio.wait([task for task in tasks if not task.done()], return_when=asyncio.FIRST_COMPLETED)
            tasks.append(asyncio.create_task(_write(es, alias, chunk, refresh_each, merge, retry)))
            # Let the request go out before the next chunk is built (the generator's work runs on this loop).
            await asyncio.sleep(0)
        written = [await task for task in tasks]
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if refresh is True:
        await es.indices.refresh(index=alias)
    created = sum(w.created for w in written)
    updated = sum(w.updated for w in written)
    failed = tuple(f for w in written for f in w.failed)
    return BulkResult(
        indexed=created + updated,
        created=created,
        updated=updated,
        failed=failed,
        retries=sum(w.retries for w in written),
    )


@dataclass(frozen=True)
class _Retry:
    max_retries: int
    backoff_s: float
    max_backoff_s: float


@dataclass(frozen=True)
class _Written:
    created: int
    updated: int
    failed: list[BulkFailure]
    retries: int
    conflicts: list[_Doc] = field(default_factory=list)


async def _write(
    es: AsyncElasticsearch, alias: str, chunk: list[_Doc], refresh: Refresh, merge: bool, retry: _Retry
) -> _Written:
    """One request's documents, retried (only the retriable ones) until done or out of retries.

    With ``merge`` the documents are first sent as ``create``, and those that exist already (409) as ``update``
    with ``doc_as_upsert``: the same documents in the end as updating every one, but a new document (most of them)
    costs Elasticsearch an index operation instead of a get, a merge and an index (measured on the posts: about
    85 instead of 140 µs of its CPU per document).
    """
    written = await _attempts(es, alias, chunk, refresh, "create" if merge else "index", retry)
    if written.conflicts:
        merged = await _attempts(es, alias, written.conflicts, refresh, "update", retry)
        return _Written(
            written.created + merged.created,
            written.updated + merged.updated,
            written.failed + merged.failed,
            written.retries + merged.retries,
        )
    return written


async def _attempts(
    es: AsyncElasticsearch, alias: str, chunk: list[_Doc], refresh: Refresh, op: _Op, retry: _Retry
) -> _Written:
    created = updated = retries = 0
    failed: list[BulkFailure] = []
    conflicts: list[_Doc] = []
    pending = chunk
    attempt = 0
    while pending:
        outcome = await _send(es, alias, pending, refresh=refresh, op=op)
        created += outcome.created
        updated += outcome.updated
        failed.extend(outcome.failed)
        conflicts.extend(outcome.conflicts)
        if outcome.retry and attempt < retry.max_retries:
            attempt += 1
            retries += 1
            delay = min(retry.max_backoff_s, retry.backoff_s * 2 ** (attempt - 1))
            _log.warning("bulk: %d documents to retry in %.1fs", len(outcome.retry), delay, extra={"alias": alias})
            await asyncio.sleep(delay)
            pending = [doc for doc, _ in outcome.retry]
            continue
        failed.extend(
            BulkFailure(doc_id, status, "retries_exhausted", f"still failing after {attempt} retries: {why}")
            for (doc_id, _), (status, why) in outcome.retry
        )
        pending = []
    return _Written(created, updated, failed, retries, conflicts)


@dataclass(frozen=True)
class _Outcome:
    created: int
    updated: int
    failed: list[BulkFailure]
    # (the document, (status, reason)) of the items worth retrying.
    retry: list[tuple[_Doc, tuple[int, str]]]
    # Documents a ``create`` found existing (409): the caller updates them instead.
    conflicts: list[_Doc]


def _body(docs: list[_Doc], op: _Op) -> bytes:
    """The request body: byte for byte what the client's NDJSON serializer makes of the operations as mappings,
    joined here once (given a list of lines, the client appends them to a buffer one by one, checking each)."""
    prefix = _ACTIONS[op]
    parts: list[bytes] = []
    append = parts.append
    for doc_id, line in docs:
        try:
            append(prefix + orjson.dumps(doc_id) + b"}}\n")
        except TypeError:  # an id orjson refuses (a lone surrogate)
            append(_JSON.dumps({op: {"_id": doc_id}}) + b"\n")
        # byte for byte what the client makes of {"doc": doc, "doc_as_upsert": True}
        append(b'{"doc":' + line + b',"doc_as_upsert":true}\n' if op == "update" else line + b"\n")
    return b"".join(parts)


async def _send(es: AsyncElasticsearch, alias: str, docs: list[_Doc], *, refresh: Refresh, op: _Op) -> _Outcome:
    try:
        # the client sends a bytes body as it is
        response = await es.bulk(
            index=alias,
            operations=_body(docs, op),  # type: ignore[arg-type]
            refresh=refresh,
            filter_path=_FILTER_PATH,
        )
    except ApiError as err:
        if err.status_code in _RETRY_STATUSES:
            return _Outcome(0, 0, [], [(d, (err.status_code, str(err.error))) for d in docs], [])
        reason = f"{err.error}: {_reason_of(err.body)}"
        return _Outcome(0, 0, [BulkFailure(i, err.status_code, str(err.error), reason) for i, _ in docs], [], [])
    except (ConnectionError, ConnectionTimeout) as err:
        return _Outcome(0, 0, [], [(d, (0, type(err).__name__)) for d in docs], [])
    created = updated = 0
    failed: list[BulkFailure] = []
    retry: list[tuple[_Doc, tuple[int, str]]] = []
    conflicts: list[_Doc] = []
    for doc, item in zip(docs, response.body.get("items", []), strict=True):
        result = item.get(op, {})
        status = int(result.get("status", 0))
        if 200 <= status < 300:
            if result.get("result") == "created":
                created += 1
            else:
                updated += 1
            continue
        if status == _EXISTS and op == "create":
            conflicts.append(doc)
            continue
        error = result.get("error") or {}
        error_type = str(error.get("type", "unknown")) if isinstance(error, dict) else "unknown"
        reason = _reason_of({"error": error})
        if status in _RETRY_STATUSES:
            retry.append((doc, (status, f"{error_type}: {reason}")))
        else:
            failed.append(BulkFailure(doc[0], status, error_type, reason))
    return _Outcome(created, updated, failed, retry, conflicts)


def _reason_of(body: Any) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            reason = str(error.get("reason", ""))
            cause = error.get("caused_by")
            if isinstance(cause, Mapping) and cause.get("reason"):
                reason = f"{reason} (caused by {cause.get('type')}: {cause.get('reason')})"
            return reason
        if error is not None:
            return str(error)
    return str(body)


def _dumps(value: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON.dumps(value)


def _chunks(docs: Iterable[tuple[str, Document]], max_docs: int, max_bytes: int) -> Iterator[list[_Doc]]:
    chunk: list[_Doc] = []
    size = 0
    for doc_id, doc in docs:
        line = doc if isinstance(doc, bytes) else _dumps(doc)
        doc_size = len(line) + len(doc_id) + 32  # the action line is about 32 bytes besides the id
        if chunk and (len(chunk) >= max_docs or size + doc_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((doc_id, line))
        size += doc_size
    if chunk:
        yield chunk
