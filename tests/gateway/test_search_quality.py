"""Search quality on the shared data, against the real Elasticsearch, through the gateway's ``Searcher``.

The posts go through the collector's own JSONL parser and pipeline (enrich, dedupe; a sink in memory instead of
Kafka, ground-truth fields removed first) and its indexer's documents (``post_document``, merged as the indexer
writes them). Their event ids come from the grader's own core, written by the grader's adapter
(``ElasticPostEvents``) as the service writes them after each batch; merged events are indexed with their
``merged_into``. Ground truth never enters.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from qingfeng.elastic import FAMILIES, IndexNames, bulk_index, create_client, delete_family, ensure_index
from qingfeng.kafka import Delivery, OutgoingRecord
from qingfeng.settings import ElasticsearchSettings
from qingfeng.text import Enricher
from qingfeng.v1 import common_pb2, post_pb2, search_pb2, source_pb2

from gateway.search import Searcher
from gateway.search_query import SearchScope
from services.collector.core import Deduper
from services.collector.indexer import post_document
from services.collector.pipeline import Outcome, Pipeline
from services.collector.settings import CollectorTopics, PipelineSettings
from services.collector.sources import parse_jsonl_line
from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
from services.grader.adapters.post_events import ElasticPostEvents
from services.grader.convert import post_view
from services.grader.core import EventSnapshot, Grader, GraderConfig

pytestmark = pytest.mark.integration

EVERYONE = SearchScope(see_tips=True)
# Rows kept from the shared data: every post with 贿 or one of the query words, and the first rows (reposts cascades
# the grader clusters into events).
QUERY_WORDS = ("贿", "官员", "腐败", "谣言")
FIRST_ROWS = 3000
GRADER_BATCH = 200


IMPORT = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
TRUTH = ("event_id", "label")


class _MemorySink:
    """The collector's record sink without Kafka: every record acknowledged at once."""

    max_request_size = 8 * 1024 * 1024

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        return [Delivery(r.topic, 0, n) for n, r in enumerate(records)]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _collect(rows: list[dict[str, Any]], enricher: Enricher) -> list[post_pb2.Post]:
    """The collector's parse and pipeline over shared rows (without their ground truth)."""
    collected_at = datetime.now(UTC)
    items = [
        parse_jsonl_line(
            json.dumps({k: v for k, v in row.items() if k not in TRUTH}, ensure_ascii=False),
            IMPORT,
            collected_at=collected_at,
            origin=f"row {n}",
        )
        for n, row in enumerate(rows)
    ]
    pipeline = Pipeline(
        _MemorySink(), enricher=enricher, deduper=Deduper(), settings=PipelineSettings(), topics=CollectorTopics()
    )

    async def run() -> list[Any]:
        return list((await pipeline.ingest(items)).results)

    results = asyncio.run(run())
    return [r.post for r in results if r.outcome is not Outcome.REJECTED and r.post is not None]


@dataclass(frozen=True)
class Corpus:
    posts: list[post_pb2.Post]
    # post id -> the event id the grader's service would write after the post's batch (merges followed then)
    written: dict[str, str]
    # event id -> the event it merged into later
    merged: dict[str, str]
    # 受…贿 apart: two shared posts joined, one with 受 and none with 受贿, replayed under new ids
    apart: list[post_pb2.Post]


def _grade(posts: list[post_pb2.Post]) -> tuple[dict[str, str], dict[str, str]]:
    grader = Grader(load_policy_file(DEFAULT_POLICY), GraderConfig())
    clusterer = grader.clusterer
    views = sorted((post_view(p) for p in posts), key=lambda v: v.created_at)
    written: dict[str, str] = {}
    merged: dict[str, str] = {}
    for start in range(0, len(views), GRADER_BATCH):
        chunk = views[start : start + GRADER_BATCH]
        for out in grader.process_batch(chunk):
            if isinstance(out, EventSnapshot) and out.merged_into:
                merged[out.event_id] = out.merged_into
        for view in chunk:  # what EngineOwner._assign writes after the batch
            event_id = clusterer.resolve(clusterer.posts.get(view.id, ""))
            if event_id:
                written[view.id] = event_id
    return written, merged


@pytest.fixture(scope="module")
def corpus(shared_data: Path) -> Corpus:
    rows = _read_rows(shared_data / "weibo_posts.jsonl")
    kept = [r for i, r in enumerate(rows) if i < FIRST_ROWS or any(w in r["text"] for w in QUERY_WORDS)]
    enricher = Enricher()
    posts = _collect(kept, enricher)
    with_shou = [r for r in rows if "受" in r["text"] and "贿" not in r["text"]][:20]
    with_hui = [r for r in rows if "贿" in r["text"] and "受贿" not in r["text"]][:20]
    joined = [
        {**a, "id": f"apart-{i}", "text": f"{a['text']} {b['text']}", "parent_id": None}
        for i, (a, b) in enumerate(zip(with_shou, with_hui, strict=False))
    ]
    apart = _collect(joined, enricher)
    assert apart, "the shared data has posts with 受 and posts with 贿"
    written, merged = _grade(posts)
    return Corpus(posts, written, merged, apart)


@dataclass
class Indexed:
    searcher: Searcher
    es: Any
    posts: IndexNames
    corpus: Corpus


async def _index_posts(es: Any, names: IndexNames, posts: list[post_pb2.Post]) -> None:
    result = await bulk_index(es, names.write_alias, [(p.id, post_document(p)) for p in posts], merge=True)
    assert result.ok, result.failed[:3]


@pytest.fixture(scope="module")
async def indexed(es_url: str, corpus: Corpus) -> AsyncIterator[Indexed]:
    prefix = f"qftest-quality-{uuid.uuid4().hex[:10]}"
    es = create_client(ElasticsearchSettings(url=es_url))
    try:
        posts = await ensure_index(es, prefix, "posts")
        events = await ensure_index(es, prefix, "events")
        await _index_posts(es, posts, corpus.posts + corpus.apart)
        # The grader's writer, as the service runs it after each batch.
        await ElasticPostEvents(es, posts).assign(corpus.written)
        merged = [(e, {"id": e, "merged_into": into, "title": ""}) for e, into in corpus.merged.items()]
        if merged:
            assert (await bulk_index(es, events.write_alias, merged)).ok
        await es.indices.refresh(index=f"{prefix}-*")
        yield Indexed(Searcher(es, prefix), es, posts, corpus)
    finally:
        for family in FAMILIES:
            await delete_family(es, IndexNames(prefix, family))
        await es.close()


async def _walk(searcher: Searcher, first: search_pb2.SearchPostsRequest) -> list[search_pb2.PostHit]:
    hits: list[search_pb2.PostHit] = []
    request = first
    while True:
        reply = await searcher.search_posts(request, EVERYONE)
        hits += reply.hits
        if not reply.next_page_token:
            return hits
        request = search_pb2.SearchPostsRequest()
        request.CopyFrom(first)
        request.page_token = reply.next_page_token


ALL = search_pb2.PostFilter(include_duplicates=True)


async def test_a_word_matches_only_its_characters_together(indexed: Indexed) -> None:
    hits = await _walk(indexed.searcher, search_pb2.SearchPostsRequest(query="受贿", filter=ALL, page_size=50))
    found = {h.post.id for h in hits}
    expected = {p.id for p in indexed.corpus.posts + indexed.corpus.apart if "受贿" in p.text_simplified}
    assert expected and found == expected, "every post with 受贿 and nothing else"
    apart = {p.id for p in indexed.corpus.apart}
    assert not found & apart, "受…贿 apart is no match"
    # The apart posts are indexed and searchable by each character's own words.
    loose = await _walk(indexed.searcher, search_pb2.SearchPostsRequest(query="贿", filter=ALL, page_size=100))
    assert apart <= {h.post.id for h in loose}
    # Highlights show the word, as text.
    words = [f for h in hits for hl in h.highlights if hl.field == "words" for f in hl.fragments]
    assert words and all("<em>受贿</em>" in f or "<em>" not in f for f in words)
    assert any("<em>受贿</em>" in f for f in words)


def _held(post: post_pb2.Post, words: tuple[str, ...]) -> int:
    return sum(word in post.text_simplified for word in words)


async def test_posts_holding_both_words_rank_above_posts_holding_one(indexed: Indexed) -> None:
    words = ("官员", "腐败")
    hits = await _walk(
        indexed.searcher, search_pb2.SearchPostsRequest(query=" ".join(words), filter=ALL, page_size=100)
    )
    held = [_held(h.post, words) for h in hits]
    counts = Counter(held)
    assert counts[2] >= 2 and counts[1] >= 20, counts
    assert 0 not in counts, "every hit holds a word"
    assert held == sorted(held, reverse=True), f"a one-word post ranks above a two-word post: {held}"
    expected = {p.id for p in indexed.corpus.posts + indexed.corpus.apart if _held(p, words)}
    assert {h.post.id for h in hits} == expected


async def test_event_filter_returns_the_posts_the_grader_put_in_the_event(indexed: Indexed) -> None:
    corpus = indexed.corpus
    final = {pid: _final(eid, corpus.merged) for pid, eid in corpus.written.items()}
    sizes = Counter(final.values())
    event_id, size = sizes.most_common(1)[0]
    assert size >= 5, sizes.most_common(3)
    request = search_pb2.SearchPostsRequest(filter=search_pb2.PostFilter(event_id=event_id, include_duplicates=True))
    request.page_size = 100
    hits = await _walk(indexed.searcher, request)
    assert {h.post.id for h in hits} == {pid for pid, eid in final.items() if eid == event_id}
    assert all(h.post.id in corpus.written for h in hits)
    # The chart of posts per event counts the same posts (event ids as written, merged ones under their own id).
    charts = await indexed.searcher.search_posts(
        search_pb2.SearchPostsRequest(
            filter=search_pb2.PostFilter(event_id=event_id, include_duplicates=True),
            aggregations=search_pb2.PostAggregationsRequest(top=50),
        ),
        EVERYONE,
    )
    assert sum(b.count for b in charts.aggregations.events) == size
    assert sum(b.count for b in charts.aggregations.histogram) == size


def _final(event_id: str, merged: dict[str, str]) -> str:
    for _ in range(64):
        if event_id not in merged:
            break
        event_id = merged[event_id]
    return event_id


async def test_paging_while_posts_arrive_neither_repeats_nor_skips(indexed: Indexed) -> None:
    searcher, corpus = indexed.searcher, indexed.corpus
    first = search_pb2.SearchPostsRequest(query="谣言", filter=ALL, page_size=7)
    before = {p.id for p in corpus.posts if "谣言" in p.text_simplified}
    assert len(before) > 3 * first.page_size
    # Posts holding the word arrive while the pages are read: replayed shared posts with new ids and newer times.
    arrivals = [_replayed(p, n) for n, p in enumerate(p for p in corpus.posts if "谣言" in p.text_simplified)]
    reply = await searcher.search_posts(first, EVERYONE)
    seen = [h.post.id for h in reply.hits]
    token = reply.next_page_token
    stop = asyncio.Event()
    arrived: list[str] = []

    async def arrive() -> None:
        for start in range(0, len(arrivals), 5):
            await _index_posts(indexed.es, indexed.posts, arrivals[start : start + 5])
            await indexed.es.indices.refresh(index=indexed.posts.write_alias)
            arrived.extend(a.id for a in arrivals[start : start + 5])
            if stop.is_set():
                return

    writer = asyncio.create_task(arrive())
    pages = 1
    try:
        while token:
            pages += 1
            request = search_pb2.SearchPostsRequest()
            request.CopyFrom(first)
            request.page_token = token
            reply = await searcher.search_posts(request, EVERYONE)
            seen += [h.post.id for h in reply.hits]
            token = reply.next_page_token
            await asyncio.sleep(0.05)  # let posts arrive between pages
        during = len(arrived)
    finally:
        stop.set()
        await writer
    assert pages >= 4 and during >= 10, f"{during} posts arrived during {pages} pages"
    duplicates = [pid for pid, n in Counter(seen).items() if n > 1]
    assert not duplicates, duplicates
    assert set(seen) == before, "the pages hold the hits of the first page's moment, each once"
    # The arrivals are there for the next search.
    again = await _walk(searcher, search_pb2.SearchPostsRequest(query="谣言", filter=ALL, page_size=100))
    assert set(arrived) <= {h.post.id for h in again}


def _replayed(post: post_pb2.Post, n: int) -> post_pb2.Post:
    copy = post_pb2.Post()
    copy.CopyFrom(post)
    copy.id = f"arrival-{n}-{post.id}"
    copy.created_at.FromSeconds(post.created_at.seconds + 86400 * 365 * 10)
    copy.dedupe.duplicate_of = ""
    return copy


def test_the_corpus_is_the_shared_data(corpus: Corpus) -> None:
    # Guards the fixtures above: posts came from the file, not from the test.
    assert len(corpus.posts) > FIRST_ROWS // 2
    assert sum("受贿" in p.text_simplified for p in corpus.posts) >= 5
    assert corpus.written, "the grader put posts into events"
