"""bulk_index serialises each document once and sends the bytes the client would have made of the mappings.

A fake client records the ``operations`` it is given; the client's own NDJSON serializer turns them into the request
body, which must equal what it makes of the operations as mappings (how bulk_index called it before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from elasticsearch.serializer import NdjsonSerializer
from qingfeng.elastic import bulk_index

DOCS: list[tuple[str, dict[str, Any]]] = [
    ("p1", {"text": "某局长涉嫌受贿", "keywords": ["局长", "受贿"], "relevance": 0.75, "reposts": 3}),
    ('p"2', {"text": 'quote " and \\ backslash, emoji \U0001f600', "nested": {"a": [1, None, True]}}),
    ("p3", {"created_at": datetime(2025, 3, 1, 8, 30, tzinfo=UTC), "empty": {}, "list": []}),
]


class _FakeEs:
    def __init__(self, statuses: list[list[int]]) -> None:
        self.bodies: list[bytes] = []
        self._statuses = statuses

    async def bulk(self, *, index: str, operations: Any, refresh: Any, filter_path: str) -> Any:
        # Only what bulk_index reads comes back: each item's status, result and error.
        assert set(filter_path.split(",")) == {"items.*.status", "items.*.result", "items.*.error"}
        self.bodies.append(NdjsonSerializer().dumps(operations))
        statuses = self._statuses.pop(0)
        first = self.bodies[-1].split(b"\n", 1)[0]
        op = next(name for name in ("update", "create", "index") if f'"{name}"'.encode() in first)
        result = "updated" if op == "update" else "created"
        items = [{op: {"status": s, "result": result} if s < 300 else {"status": s, "error": {"type": "x"}}}
                 for s in statuses]  # fmt: skip
        return SimpleNamespace(body={"items": items})


class _PerRequest:
    """Statuses for a fake whose requests vary in size: 201 for every document of the request at hand."""

    def __init__(self) -> None:
        self.es: _FakeEs | None = None

    def pop(self, _: int) -> list[int]:
        assert self.es is not None
        return [201] * (self.es.bodies[-1].count(b"\n") // 2)


def _as_mappings(docs: list[tuple[str, dict[str, Any]]], merge: bool, op: str = "") -> bytes:
    operations: list[Any] = []
    for doc_id, doc in docs:
        operations.append({op or ("update" if merge else "index"): {"_id": doc_id}})
        operations.append({"doc": doc, "doc_as_upsert": True} if merge else doc)
    return NdjsonSerializer().dumps(operations)


@pytest.mark.parametrize("merge", [False, True])
async def test_request_body_is_what_the_client_makes_of_the_mappings(merge: bool) -> None:
    es = _FakeEs([[201, 201, 201]])
    result = await bulk_index(es, "alias", DOCS, merge=merge)  # type: ignore[arg-type]
    assert result.indexed == 3 and result.ok
    # merge: new documents are created as they are (a create is cheaper for Elasticsearch than an update)
    assert es.bodies == [_as_mappings(DOCS, False, "create" if merge else "index")]


async def test_merge_updates_the_documents_that_exist() -> None:
    es = _FakeEs([[201, 409, 409], [200, 200]])
    result = await bulk_index(es, "alias", DOCS, merge=True)  # type: ignore[arg-type]
    assert result.ok and (result.created, result.updated) == (1, 2)
    assert es.bodies == [_as_mappings(DOCS, False, "create"), _as_mappings(DOCS[1:], True)]


async def test_a_conflict_without_merge_is_a_failure() -> None:
    es = _FakeEs([[201, 409, 201]])
    result = await bulk_index(es, "alias", DOCS)  # type: ignore[arg-type]
    assert result.indexed == 2 and [(f.id, f.status) for f in result.failed] == [('p"2', 409)]
    assert len(es.bodies) == 1


async def test_only_the_refused_documents_are_sent_again() -> None:
    es = _FakeEs([[201, 429, 201], [201]])
    result = await bulk_index(es, "alias", DOCS, backoff_s=0.0, merge=True)  # type: ignore[arg-type]
    assert result.indexed == 3 and result.retries == 1
    assert es.bodies[1] == _as_mappings(DOCS[1:2], False, "create")


async def test_chunks_split_by_count() -> None:
    es = _FakeEs([[201, 201], [201]])
    await bulk_index(es, "alias", DOCS, chunk_docs=2)  # type: ignore[arg-type]
    assert es.bodies == [_as_mappings(DOCS[:2], False), _as_mappings(DOCS[2:], False)]


async def test_what_orjson_refuses_is_serialised_as_the_client_would() -> None:
    odd = [("big", {"n": 1 << 70}), ("surrogate", {"text": "a\ud800b"}), ("ok", {"text": "受贿"})]
    es = _FakeEs([[201, 201, 201]])
    result = await bulk_index(es, "alias", odd)  # type: ignore[arg-type]
    assert result.indexed == 3
    assert es.bodies == [_as_mappings(odd, False)]


async def test_long_documents_are_sent_in_requests_under_a_mebibyte() -> None:
    # aiohttp warns (ResourceWarning, an error under this suite's filterwarnings) on a bytes body over 1 MiB.
    long_docs = [(f"a{i}", {"text": "纪" * 3000}) for i in range(500)]  # 9 KB of UTF-8 each: 4.5 MB in all
    es = _FakeEs([])
    statuses = _PerRequest()
    es._statuses = statuses  # type: ignore[assignment]
    statuses.es = es
    result = await bulk_index(es, "alias", long_docs)  # type: ignore[arg-type]
    assert result.indexed == 500
    assert len(es.bodies) > 4
    assert max(len(b) for b in es.bodies) < 2**20


class _Slow:
    """A fake whose requests take a while: counts how many are in flight at once and how far ``docs`` was read.

    The first request holding document ``d4`` is refused with 429 (retried alone); everything else is created.
    """

    def __init__(self, pulled: list[int]) -> None:
        self.in_flight = 0
        self.most = 0
        self.bodies: list[bytes] = []
        self.pulled_at_send: list[int] = []
        self._pulled = pulled
        self._refused = False
        self.cancelled = 0

    async def bulk(self, *, index: str, operations: Any, refresh: Any, filter_path: str) -> Any:
        body = NdjsonSerializer().dumps(operations)
        self.bodies.append(body)
        self.pulled_at_send.append(len(self._pulled))
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        refuse = b'"d4"' in body and not self._refused
        self._refused |= refuse
        status = 429 if refuse else 201
        items = [{"index": {"status": status, "result": "created"}} for _ in range(body.count(b"\n") // 2)]
        return SimpleNamespace(body={"items": items})


def _numbered(*ids: int) -> list[tuple[str, dict[str, Any]]]:
    return [(f"d{i}", {"n": i}) for i in ids]


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_requests_in_flight_are_bounded_and_docs_are_read_lazily(concurrency: int) -> None:
    pulled: list[int] = []

    def docs() -> Iterator[tuple[str, dict[str, Any]]]:
        for doc_id, doc in _numbered(*range(10)):
            pulled.append(doc["n"])
            yield doc_id, doc

    es = _Slow(pulled)
    result = await bulk_index(es, "alias", docs(), chunk_docs=2, concurrency=concurrency, backoff_s=0.0)  # type: ignore[arg-type]
    # Every document indexed, the refused pair retried alone; the requests are those sent one after another.
    assert result.indexed == 10 and result.ok and result.retries == 1
    assert es.most == concurrency
    pairs = [_numbered(i, i + 1) for i in range(0, 10, 2)]
    assert sorted(es.bodies) == sorted([_as_mappings(p, False) for p in pairs] + [_as_mappings(pairs[2], False)])
    # A request is built only when there is room for it: documents are read one request (+1 to see its end) ahead.
    assert all(n <= 2 * (i + 1) + 1 for i, n in enumerate(es.pulled_at_send[:5]))


async def test_an_exception_cancels_the_requests_in_flight() -> None:
    es = _Slow([])

    def docs() -> Iterator[tuple[str, dict[str, Any]]]:
        yield "a", {"n": 1}
        yield "b", {"n": 2}
        yield "c", {"n": 3}  # a request is cut when the next document shows it is full: "b" goes out here
        raise RuntimeError("the document builder failed")

    with pytest.raises(RuntimeError, match="builder failed"):
        await bulk_index(es, "alias", docs(), chunk_docs=1, concurrency=3)  # type: ignore[arg-type]
    # The two requests already sent were cancelled and waited for: none is left running after the call.
    assert len(es.bodies) == 2 and es.cancelled == 2 and es.in_flight == 0


@pytest.mark.parametrize("merge", [False, True])
async def test_documents_given_as_bytes_are_sent_as_the_same_body(merge: bool) -> None:
    # The posts indexer serialises its documents itself; bytes and mappings may be mixed in one call.
    as_bytes = [(doc_id, orjson.dumps(doc) if n % 2 == 0 else doc) for n, (doc_id, doc) in enumerate(DOCS)]
    es = _FakeEs([[201, 409, 201], [200]] if merge else [[201, 201, 201]])
    result = await bulk_index(es, "alias", as_bytes, merge=merge)  # type: ignore[arg-type]
    assert result.indexed == 3 and result.ok
    if merge:
        assert es.bodies == [_as_mappings(DOCS, False, "create"), _as_mappings(DOCS[1:2], True)]
    else:
        assert es.bodies == [_as_mappings(DOCS, False)]


async def test_an_id_orjson_refuses_gets_the_clients_action_line() -> None:
    docs = [("a\ud800b", {"n": 1}), ("ok", {"n": 2})]
    es = _FakeEs([[201, 201]])
    assert (await bulk_index(es, "alias", docs)).indexed == 2  # type: ignore[arg-type]
    assert es.bodies == [_as_mappings(docs, False)]
