"""What the posts template leaves out to cost Elasticsearch less CPU per post, in the real Elasticsearch.

The original ``text`` is stored, not indexed: readers get it back in ``_source``, searches find the post through
``text_simplified`` as before, and a query on ``text`` itself is refused (not silently empty). Posts indices refresh
every 5 s; a write with ``refresh`` is searchable at once all the same. An index made by the previous template keeps
serving (Elasticsearch refuses to un-index ``text`` in place) until it rolls over.
"""

from __future__ import annotations

import logging

import pytest
from elasticsearch import AsyncElasticsearch, BadRequestError
from qingfeng.elastic import ANALYZER, POSTS, IndexFamily, IndexNames, bulk_index, ensure_index, phrase_query, rollover
from qingfeng.elastic.templates import POSTS_REFRESH_INTERVAL

pytestmark = pytest.mark.integration

TRADITIONAL = "某局長涉嫌受賄被紀委帶走"
SIMPLIFIED = "某局长涉嫌受贿被纪委带走"


async def test_original_text_is_returned_and_found_through_text_simplified(es: AsyncElasticsearch, prefix: str) -> None:
    names = await ensure_index(es, prefix, "posts")
    doc = {"id": "p-1", "text": TRADITIONAL, "text_simplified": SIMPLIFIED, "words": "某 局长 涉嫌 受贿 被 纪委 带走"}
    result = await bulk_index(es, names.write_alias, [("p-1", doc)], refresh=True)
    assert result.failed == ()

    found = await es.search(index=names.read_alias, query=phrase_query("受贿"))
    hits = found["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["p-1"]
    assert hits[0]["_source"]["text"] == TRADITIONAL
    assert (await es.search(index=names.read_alias, query={"match": {"words": "受贿"}}))["hits"]["total"]["value"] == 1

    for query in ({"match_phrase": {"text": "受賄"}}, {"match": {"text": "受賄"}}):
        with pytest.raises(BadRequestError, match=r"\[text\]"):
            await es.search(index=names.read_alias, query=query)

    mapping = (await es.indices.get_mapping(index=names.first_index)).body[names.first_index]["mappings"]
    assert mapping["properties"]["text"] == {"type": "text", "index": False}


async def test_posts_indices_refresh_at_the_template_interval_events_at_the_default(
    es: AsyncElasticsearch, prefix: str
) -> None:
    posts = await ensure_index(es, prefix, "posts")
    events = await ensure_index(es, prefix, "events")
    got = (await es.indices.get_settings(index=posts.first_index, name="index.refresh_interval")).body
    assert got[posts.first_index]["settings"]["index"]["refresh_interval"] == POSTS_REFRESH_INTERVAL
    got = (await es.indices.get_settings(index=events.first_index, include_defaults=True)).body[events.first_index]
    assert "refresh_interval" not in got["settings"]["index"]
    assert got["defaults"]["index"]["refresh_interval"] == "1s"
    # A writer that must see its write at once still can.
    await bulk_index(es, posts.write_alias, [("p-now", {"id": "p-now", "text_simplified": "受贿"})], refresh=True)
    assert (await es.count(index=posts.read_alias, query=phrase_query("受贿")))["count"] == 1


async def test_an_index_of_template_version_2_keeps_serving_after_the_upgrade(
    es: AsyncElasticsearch, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    names = IndexNames(prefix, "posts")
    # The old template: ``text`` indexed, and (as if a field were added since) no ``url``.
    old = {k: v for k, v in POSTS.properties.items() if k != "url"} | {"text": {"type": "text", "analyzer": ANALYZER}}
    await ensure_index(es, prefix, IndexFamily(name="posts", properties=old, rolls_over=True))

    with caplog.at_level(logging.INFO, logger="qingfeng.elastic.index"):
        assert await ensure_index(es, prefix, "posts") == names  # a service of this version starting
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "keeps its mapping" in m], messages  # nothing refused: only url was sent
    assert any("added fields url" in m for m in messages), messages
    mapping = (await es.indices.get_mapping(index=names.first_index)).body[names.first_index]["mappings"]
    assert mapping["properties"]["text"]["analyzer"] == ANALYZER  # kept: Elasticsearch refuses to un-index in place
    assert mapping["properties"]["url"] == POSTS.properties["url"]  # the missing field was added
    doc = {"id": "p-1", "text": "受賄", "text_simplified": "受贿", "words": "受贿"}
    assert (await bulk_index(es, names.write_alias, [("p-1", doc)], refresh=True)).failed == ()
    assert (await es.count(index=names.read_alias, query=phrase_query("受贿")))["count"] == 1

    rolled = await rollover(es, names.write_alias, max_docs=1)
    assert rolled.rolled_over
    mapping = (await es.indices.get_mapping(index=rolled.new_index)).body[rolled.new_index]["mappings"]
    assert mapping["properties"]["text"] == {"type": "text", "index": False}
