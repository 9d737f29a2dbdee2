"""The posts' ``words`` field: whitespace-analysed in the template, added to indices created before it, and kept by
merging writes (the posts indexer's ``merge=True``) so a field another writer set (``event_id``) survives."""

from __future__ import annotations

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import (
    POSTS,
    WORDS_ANALYZER,
    IndexNames,
    bulk_index,
    default_splitter,
    ensure_index,
    index_settings,
    rollover,
    template_body,
)

pytestmark = pytest.mark.integration


def test_the_template_indexes_words_with_the_core_whitespace_analyzer() -> None:
    body = template_body(POSTS, IndexNames("qingfeng", "posts"), cjk="unigram")
    words = body["template"]["mappings"]["properties"]["words"]
    assert words == {"type": "text", "analyzer": "whitespace", "index_options": "offsets"}
    assert WORDS_ANALYZER == "whitespace"


async def test_whitespace_analysis_keeps_the_splitter_words_whole(es: AsyncElasticsearch) -> None:
    field = default_splitter().field("网友举报局长涉嫌受贿，收受好处费")
    analyzed = await es.indices.analyze(analyzer=WORDS_ANALYZER, text=field)
    tokens = [t["token"] for t in analyzed.body["tokens"]]
    assert tokens == field.split(" ") and "受贿" in tokens and "，" in tokens


async def test_an_index_created_before_words_gets_the_field(es: AsyncElasticsearch, prefix: str) -> None:
    names = IndexNames(prefix, "posts")
    old = {k: v for k, v in POSTS.properties.items() if k != "words"}
    await es.indices.create(
        index=names.first_index,
        settings=index_settings(cjk="unigram"),
        mappings={"dynamic": False, "properties": old},
        aliases={names.write_alias: {"is_write_index": True}, names.read_alias: {}},
    )
    await ensure_index(es, prefix, "posts", cjk="unigram")
    mapping = await es.indices.get_mapping(index=names.first_index)
    assert mapping.body[names.first_index]["mappings"]["properties"]["words"]["analyzer"] == "whitespace"
    await bulk_index(es, names.write_alias, [("p1", {"id": "p1", "words": "局长 涉嫌 受贿"})], refresh=True)
    found = await es.search(index=names.read_alias, query={"match": {"words": "受贿"}})
    assert [h["_id"] for h in found.body["hits"]["hits"]] == ["p1"]


async def test_merging_writes_keep_fields_they_do_not_carry(es: AsyncElasticsearch, prefix: str) -> None:
    names = await ensure_index(es, prefix, "posts", cjk="unigram")
    # The grader's event id lands first (the post is not indexed yet), then the indexer writes the post twice.
    first = await bulk_index(es, names.write_alias, [("p1", {"id": "p1", "event_id": "e1"})], merge=True)
    post = {"id": "p1", "text": "局长受贿", "reposts": 1}
    second = await bulk_index(es, names.write_alias, [("p1", post)], merge=True)
    third = await bulk_index(es, names.write_alias, [("p1", {**post, "reposts": 5})], merge=True, refresh=True)
    assert (first.created, second.updated, third.updated) == (1, 1, 1)
    doc = (await es.get(index=names.write_alias, id="p1")).body["_source"]
    assert doc == {"id": "p1", "event_id": "e1", "text": "局长受贿", "reposts": 5}
    # A plain index replaces the document: what the indexer did before it merged.
    await bulk_index(es, names.write_alias, [("p1", post)], refresh=True)
    assert "event_id" not in (await es.get(index=names.write_alias, id="p1")).body["_source"]


async def test_the_grader_writes_event_ids_where_the_post_lives(es: AsyncElasticsearch, prefix: str) -> None:
    from services.grader.adapters.post_events import ElasticPostEvents

    names = await ensure_index(es, prefix, "posts", cjk="unigram")
    await bulk_index(es, names.write_alias, [("old", {"id": "old", "text": "旧帖"})], refresh=True)
    rolled = await rollover(es, names.write_alias)
    assert rolled.rolled_over
    writer = ElasticPostEvents(es, names, refresh=True)
    await writer.assign({"old": "e1", "early": "e2", "": "ignored", "none": ""})
    where = await es.search(index=names.read_alias, query={"match_all": {}}, size=10)
    docs = {h["_id"]: (h["_index"], h["_source"]) for h in where.body["hits"]["hits"]}
    assert docs["old"] == (names.first_index, {"id": "old", "text": "旧帖", "event_id": "e1"}), "updated in place"
    assert docs["early"] == (rolled.new_index, {"id": "early", "event_id": "e2"}), "waits for the indexer's merge"
    assert set(docs) == {"old", "early"} and writer.written == 2


async def test_the_grader_never_creates_the_posts_family(es: AsyncElasticsearch, prefix: str) -> None:
    from services.grader.adapters.post_events import ElasticPostEvents

    names = IndexNames(prefix, "posts")
    writer = ElasticPostEvents(es, names)
    await writer.assign({"p1": "e1"})  # the collector has not created the family: nothing to mark, no error
    assert not await es.indices.exists(index=names.write_alias), "no plain index named like the write alias"
