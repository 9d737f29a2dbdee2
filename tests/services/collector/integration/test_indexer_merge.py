"""The indexer's serialised documents against the real Elasticsearch: a post is created as its document, and a post
the grader already wrote an ``event_id`` onto (indexed before it, or again) keeps that id (create, 409, update with
``doc_as_upsert``), with every field of the post's document as ``post_document`` gives it."""

from __future__ import annotations

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import bulk_index, ensure_index
from qingfeng.kafka import Producer

from services.collector.indexer import post_document
from services.collector.settings import CollectorSettings
from tests.services.collector.integration.helpers import IndexerKit

pytestmark = pytest.mark.integration


async def test_indexed_posts_are_their_documents_and_keep_the_graders_event_id(
    settings: CollectorSettings, es: AsyncElasticsearch, indexer_kit: IndexerKit
) -> None:
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    posts = [indexer_kit.post(n) for n in range(3)]
    posts[1].enrichment.regions.add(code="110000", name="北京市")  # a tagged post's document too
    # The grader wrote post 0's event before the indexer saw the post.
    assert (await bulk_index(es, names.write_alias, [(posts[0].id, {"event_id": "e-0"})], merge=True)).ok
    async with Producer(settings.kafka) as producer:
        indexer = indexer_kit.indexer(es, names.write_alias, producer)
        await indexer.handle(indexer_kit.records(posts))
        assert indexer.indexed == 3
        # The grader writes post 2's event, then the post is indexed again (a redelivery): both ids stay.
        assert (await bulk_index(es, names.write_alias, [(posts[2].id, {"event_id": "e-2"})], merge=True)).ok
        await indexer.handle(indexer_kit.records(posts))
        assert indexer.indexed == 6
    await es.indices.refresh(index=names.read_alias)
    for post, event_id in zip(posts, ["e-0", None, "e-2"], strict=True):
        source = (await es.get(index=names.write_alias, id=post.id)).body["_source"]
        assert source.pop("event_id", None) == event_id
        assert source == post_document(post)
    assert (await es.count(index=names.read_alias)).body["count"] == 3
