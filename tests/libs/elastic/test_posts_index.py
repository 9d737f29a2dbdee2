"""The posts index from its template in the real Elasticsearch: Chinese search, idempotent writes, aliases."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import (
    ANALYZER,
    IndexNames,
    bulk_index,
    create_client,
    detect_cjk_mode,
    ensure_index,
    health,
    phrase_query,
    rollover,
)
from qingfeng.settings import ElasticsearchSettings

pytestmark = pytest.mark.integration

POSTS: list[tuple[str, dict[str, Any]]] = [
    ("p-bribe", {"title": "某局长涉嫌受贿被纪委带走", "text_simplified": "某局长涉嫌受贿被纪委带走，详情待公布。"}),
    ("p-praise", {"title": "表扬与传闻", "text_simplified": "他受到表扬，贿选传闻不实"}),
    ("p-road", {"title": "城东道路施工", "text_simplified": "城东道路施工，请市民绕行。"}),
    ("p-weather", {"title": "今日天气", "text_simplified": "今天晴转多云，气温回升。"}),
    ("p-school", {"title": "学校开学", "text_simplified": "全市中小学九月一日开学，家长注意接送安全。"}),
]


def docs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (pid, {**doc, "id": pid, "region_codes": ["110101"], "reposts": 3, "created_at": "2025-03-01T08:30:00Z"})
        for pid, doc in POSTS
    ]


async def search_ids(es: AsyncElasticsearch, index: str, query: dict[str, Any]) -> set[str]:
    response = await es.search(index=index, query=query, size=50)
    return {hit["_id"] for hit in response["hits"]["hits"]}


@pytest.mark.parametrize("cjk", ["auto", "unigram"])
async def test_two_character_query_finds_only_the_bribery_post(es: AsyncElasticsearch, prefix: str, cjk: str) -> None:
    mode = await detect_cjk_mode(es) if cjk == "auto" else "unigram"
    names = await ensure_index(es, prefix, "posts", cjk=mode)
    assert names == IndexNames(prefix, "posts")

    result = await bulk_index(es, names.write_alias, docs(), refresh=True)
    assert (result.indexed, result.created, result.failed) == (5, 5, ())

    for index in (names.read_alias, names.write_alias):
        assert await search_ids(es, index, {"match_phrase": {"text_simplified": "受贿"}}) == {"p-bribe"}
        assert await search_ids(es, index, {"match_phrase": {"title": "受贿"}}) == {"p-bribe"}
        assert await search_ids(es, index, phrase_query("受贿")) == {"p-bribe"}
    # Longer phrases keep their order.
    assert await search_ids(es, names.read_alias, {"match_phrase": {"text_simplified": "纪委带走"}}) == {"p-bribe"}
    assert await search_ids(es, names.read_alias, {"match_phrase": {"text_simplified": "带走纪委"}}) == set()
    assert await search_ids(es, names.read_alias, phrase_query("受贿 局长")) == {"p-bribe"}
    assert await search_ids(es, names.read_alias, phrase_query("受贿 天气")) == set()
    # 受 and 贿 both occur in the praise post, but never side by side.
    analyzed = await es.indices.analyze(index=names.write_alias, analyzer=ANALYZER, text="他受到表扬，贿选传闻不实")
    tokens = [t["token"] for t in analyzed["tokens"]]
    assert "受贿" not in tokens
    if mode == "bigram":
        assert {"受到", "贿选"} <= set(tokens)
        # Under bigrams a plain match on a two-character word is precise too.
        assert await search_ids(es, names.read_alias, {"match": {"title": "受贿"}}) == {"p-bribe"}
    else:
        assert tokens[:3] == ["他", "受", "到"]
    # Keyword and numeric fields from the template.
    assert await search_ids(es, names.read_alias, {"term": {"region_codes": "110101"}}) == {pid for pid, _ in POSTS}
    assert await search_ids(es, names.read_alias, {"term": {"title.keyword": "今日天气"}}) == {"p-weather"}


async def test_reindexing_is_idempotent_and_ensure_index_too(es: AsyncElasticsearch, prefix: str) -> None:
    names = await ensure_index(es, prefix)
    await bulk_index(es, names.write_alias, docs(), refresh=True)
    again = await bulk_index(es, names.write_alias, docs(), refresh="wait_for")
    assert (again.indexed, again.created, again.updated) == (5, 0, 5)
    assert (await es.count(index=names.read_alias))["count"] == 5

    assert await ensure_index(es, prefix) == names  # second start: nothing changes
    indices = await es.indices.get(index=names.pattern)
    assert sorted(indices) == [names.first_index]


async def test_aliases_point_at_the_write_index_and_follow_rollover(es: AsyncElasticsearch, prefix: str) -> None:
    names = await ensure_index(es, prefix)
    aliases = (await es.indices.get_alias(name=names.write_alias)).body
    assert aliases == {names.first_index: {"aliases": {names.write_alias: {"is_write_index": True}}}}
    assert set((await es.indices.get_alias(name=names.read_alias)).body) == {names.first_index}

    await bulk_index(es, names.write_alias, docs()[:2], refresh=True)
    not_yet = await rollover(es, names.write_alias, max_docs=100)
    assert not not_yet.rolled_over
    rolled = await rollover(es, names.write_alias, max_docs=2)
    assert rolled.rolled_over
    assert (rolled.old_index, rolled.new_index) == (names.first_index, f"{prefix}-posts-000002")

    write = (await es.indices.get_alias(name=names.write_alias)).body
    assert write[rolled.new_index]["aliases"][names.write_alias]["is_write_index"] is True
    assert write[rolled.old_index]["aliases"][names.write_alias]["is_write_index"] is False
    # The new index got the template: mapping (analyzer) and read alias.
    assert set((await es.indices.get_alias(name=names.read_alias)).body) == {rolled.old_index, rolled.new_index}
    await bulk_index(es, names.write_alias, docs()[2:], refresh=True)
    assert (await es.count(index=rolled.new_index))["count"] == 3
    assert await search_ids(es, names.read_alias, {"match_phrase": {"text_simplified": "受贿"}}) == {"p-bribe"}


async def test_bulk_reports_rejected_documents_per_item(es: AsyncElasticsearch, prefix: str) -> None:
    names = await ensure_index(es, prefix)
    result = await bulk_index(
        es,
        names.write_alias,
        [("ok", {"id": "ok", "reposts": 1}), ("bad", {"id": "bad", "reposts": "很多"})],
        refresh=True,
    )
    assert (result.indexed, result.ok) == (1, False)
    (failure,) = result.failed
    assert (failure.id, failure.status) == ("bad", 400)
    assert "parsing" in failure.error_type
    assert failure.reason


async def test_health(es: AsyncElasticsearch) -> None:
    state = await health(es)
    assert state.ok, state
    assert state.version.startswith("8.")

    unreachable = create_client(ElasticsearchSettings(url="http://127.0.0.1:9"))
    try:
        down = await health(unreachable, timeout_s=1)
    finally:
        await unreachable.close()
    assert (down.ok, down.status) == (False, "unreachable")
