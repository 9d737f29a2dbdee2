"""The indexer's documents are the same as before its speed-up: ``post_document`` against a frozen copy of the
former code (below, as it was at 8d57ff9), on the first 5,000 shared posts through the collector's own parse,
enrichment and conversion, and on hand-made posts that fill every field the shared data leaves empty."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FileDescriptor
from qingfeng.elastic.words import WordSplitter, default_splitter
from qingfeng.text import Enricher
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.convert import fill_post
from services.collector.core import Deduper, enrich_post
from services.collector.indexer import post_document
from services.collector.sources.jsonl import parse_jsonl_line

_SOURCE = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
_LIMIT = 5000


# -- the former code, frozen ----------------------------------------------------------------------------------------


def _names(file: FileDescriptor, enum: str) -> dict[int, str]:
    return {value.number: value.name for value in file.enum_types_by_name[enum].values}


_SOURCE_KIND = _names(common_pb2.DESCRIPTOR, "SourceKind")
_CATEGORY = _names(post_pb2.DESCRIPTOR, "CorruptionCategory")
_OFFLINE = _names(post_pb2.DESCRIPTOR, "OfflineActionKind")
_DUPLICATE = _names(post_pb2.DESCRIPTOR, "DuplicateKind")


def _old_enrichment(e: post_pb2.Enrichment) -> tuple[dict[str, Any], dict[str, Any]]:
    terms = e.corruption_terms
    titles = e.official_titles
    regions = e.regions
    signals = e.offline_signals
    nested: dict[str, Any] = {
        "corruption_terms": [
            {"term": t.term, "category": _CATEGORY.get(t.category, ""), "count": t.count} for t in terms
        ],
        "official_titles": [
            {"title": o.title, "person_name": o.person_name, "organization": o.organization} for o in titles
        ],
        "regions": [{"code": r.code, "name": r.name} for r in regions],
        "offline_signals": [{"kind": _OFFLINE.get(s.kind, ""), "term": s.term, "planned": s.planned} for s in signals],
        "relevance": e.relevance,
        "relevance_reasons": [
            {"criterion": r.criterion, "value": r.value, "message": r.message} for r in e.relevance_reasons
        ],
        "lexicon_version": e.lexicon_version,
    }
    flat: dict[str, Any] = {
        "corruption_terms": list(dict.fromkeys(t.term for t in terms)) if terms else [],
        "corruption_categories": list(dict.fromkeys(_CATEGORY.get(t.category, "") for t in terms)) if terms else [],
        "official_titles": [o.title for o in titles],
        "region_codes": [r.code for r in regions],
        "region_names": [r.name for r in regions],
        "offline_actions": list(dict.fromkeys(_OFFLINE.get(s.kind, "") for s in signals)) if signals else [],
        "relevance": e.relevance,
        "lexicon_version": e.lexicon_version,
    }
    return nested, flat


def old_post_document(post: post_pb2.Post, splitter: WordSplitter | None = None) -> dict[str, Any]:
    d = post.dedupe
    author = post.author
    enrichment, flat = _old_enrichment(post.enrichment)
    doc: dict[str, Any] = {
        "id": post.id,
        "source_id": post.source_id,
        "source_kind": _SOURCE_KIND.get(post.source_kind, ""),
        "native_id": post.native_id,
        "url": post.url,
        "platform": post.platform,
        "title": post.title,
        "text": post.text,
        "text_simplified": post.text_simplified,
        "words": (splitter or default_splitter()).field(post.text_simplified),
        "keywords": list(post.keywords),
        "reposts": post.reposts,
        "comments": post.comments,
        "likes": post.likes,
        "views": post.views,
        "parent_id": post.parent_id,
        "root_id": post.root_id,
        "language": post.language,
        "media_urls": list(post.media_urls),
        "enrichment": enrichment,
        "dedupe": {
            "content_hash": d.content_hash,
            "simhash": str(d.simhash),
            "duplicate_of": d.duplicate_of,
            "duplicate_kind": _DUPLICATE.get(d.duplicate_kind, ""),
            "hamming_distance": d.hamming_distance,
        },
        **flat,
        "content_hash": d.content_hash,
        "simhash": f"{d.simhash:016x}",
        "duplicate_of": d.duplicate_of,
    }
    if post.HasField("author"):
        doc["author"] = {
            "id": author.id,
            "name": author.name,
            "followers": author.followers,
            "is_media": author.is_media,
            "is_verified": author.is_verified,
        }
    if post.HasField("created_at"):
        doc["created_at"] = post.created_at.ToJsonString()
    if post.HasField("collected_at"):
        doc["collected_at"] = post.collected_at.ToJsonString()
    return doc


# -- the comparison -------------------------------------------------------------------------------------------------


def _same(post: post_pb2.Post) -> None:
    splitter = default_splitter()
    # Key order too: the bulk body is the JSON text, so it must be the same text.
    old = json.dumps(old_post_document(post, splitter), ensure_ascii=False)
    new = json.dumps(post_document(post, splitter), ensure_ascii=False)
    assert new == old, post.id


@pytest.fixture(scope="module")
def shared_posts(shared_data: Path) -> list[post_pb2.Post]:
    enricher = Enricher()
    deduper = Deduper()
    collected_at = datetime(2026, 11, 30, tzinfo=UTC)
    posts: list[post_pb2.Post] = []
    with (shared_data / "weibo_posts.jsonl").open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            item = parse_jsonl_line(line.strip(), _SOURCE, collected_at=collected_at, origin=f"line {number}")
            if not isinstance(item, post_pb2.Post):
                continue
            enriched = enrich_post(
                item.id,
                item.text,
                item.created_at.ToDatetime(UTC),
                title=item.title,
                enricher=enricher,
                deduper=deduper,
            )
            fill_post(item, enriched, enricher.lexicons.regions)
            posts.append(item)
            if len(posts) >= _LIMIT:
                break
    return posts


def test_shared_posts_give_the_same_documents(shared_posts: list[post_pb2.Post]) -> None:
    assert len(shared_posts) == _LIMIT
    # The sample exercises what the documents hold: tags, regions, duplicates, reposts.
    assert any(p.enrichment.corruption_terms for p in shared_posts)
    assert any(p.enrichment.regions for p in shared_posts)
    assert any(p.dedupe.duplicate_of for p in shared_posts)
    assert any(p.parent_id for p in shared_posts)
    for post in shared_posts:
        _same(post)


def _full_post() -> post_pb2.Post:
    post = post_pb2.Post(
        id="p1",
        source_id="s1",
        source_kind=common_pb2.SOURCE_KIND_JSONL_IMPORT,
        native_id="n1",
        url="https://example.org/1",
        platform="weibo.com",
        title="标题",
        text="某局长受贿，明天去市政府门口静坐 ABC",
        text_simplified="标题\n某局长受贿，明天去市政府门口静坐 abc",
        keywords=["局长", "受贿"],
        reposts=3,
        comments=4,
        likes=5,
        views=2**40,
        parent_id="p0",
        root_id="p0",
        language="zh",
        media_urls=["https://example.org/a.jpg", "https://example.org/b.jpg"],
    )
    post.author.id = "a1"
    post.author.name = "某人"
    post.author.followers = 12
    post.author.is_media = True
    post.author.is_verified = True
    post.created_at.FromDatetime(datetime(2024, 5, 1, 4, 30, 15, 123456, tzinfo=UTC).replace(tzinfo=None))
    post.collected_at.seconds = 1_700_000_000
    e = post.enrichment
    e.corruption_terms.add(term="受贿", category=post_pb2.CORRUPTION_CATEGORY_BRIBERY, count=2)
    e.corruption_terms.add(term="索贿", category=post_pb2.CORRUPTION_CATEGORY_BRIBERY, count=1)
    e.corruption_terms.add(term="受贿", category=post_pb2.CORRUPTION_CATEGORY_OTHER, count=1)
    e.corruption_terms.add(term="x", category=99, count=1)  # type: ignore[arg-type]  # an enum value not known
    e.official_titles.add(title="局长", person_name="张三", organization="某局")
    e.official_titles.add(title="书记")
    e.regions.add(code="110000", name="北京市")
    e.regions.add(code="110101", name="东城区")
    e.offline_signals.add(kind=post_pb2.OFFLINE_ACTION_KIND_SIT_IN, term="静坐", planned=True)
    e.offline_signals.add(kind=post_pb2.OFFLINE_ACTION_KIND_SIT_IN, term="坐", planned=False)
    e.offline_signals.add(kind=post_pb2.OFFLINE_ACTION_KIND_MARCH, term="游行", planned=False)
    e.relevance = 0.375
    e.relevance_reasons.add(criterion="terms", value=0.5, message="受贿、索贿")
    e.lexicon_version = "v9"
    post.dedupe.content_hash = "abc"
    post.dedupe.simhash = 2**64 - 1
    post.dedupe.duplicate_of = "p0"
    post.dedupe.duplicate_kind = post_pb2.DUPLICATE_KIND_NEAR
    post.dedupe.hamming_distance = 3
    return post


def test_every_field_filled_gives_the_same_document() -> None:
    _same(_full_post())


def test_an_empty_post_gives_the_same_document() -> None:
    _same(post_pb2.Post())
    _same(post_pb2.Post(id="only-id", text_simplified="  \n "))


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (-62_135_596_800, 0),
        (253_402_300_799, 999_999_999),
        (0, 0),
        (0, 1),
        (0, 1_000),
        (0, 1_000_000),
        (-1, 500),
        (1_700_000_000, 123_456_789),
        (1_700_000_000, 120_000_000),
        (1_700_000_000, 120_000),
    ],
)
def test_times_are_written_as_timestamp_json(seconds: int, nanos: int) -> None:
    post = post_pb2.Post(id="t")
    post.created_at.seconds = seconds
    post.created_at.nanos = nanos
    assert post_document(post)["created_at"] == post.created_at.ToJsonString()


@pytest.mark.parametrize(("seconds", "nanos"), [(-62_135_596_801, 0), (253_402_300_800, 0), (0, -1)])
def test_a_time_out_of_range_still_raises(seconds: int, nanos: int) -> None:
    post = post_pb2.Post(id="t")
    post.created_at.seconds = seconds
    post.created_at.nanos = nanos
    with pytest.raises(ValueError):
        old_post_document(post)
    with pytest.raises(ValueError):
        post_document(post)


def test_repeated_texts_and_times_come_from_the_memo_unchanged(shared_posts: list[post_pb2.Post]) -> None:
    # Twice over: the second pass is all memo hits, and must give the same documents as the frozen code.
    for post in shared_posts[:500] + shared_posts[:500]:
        _same(post)
