"""Template bodies and names, without a cluster."""

from __future__ import annotations

import qingfeng.elastic as elastic
from qingfeng.elastic import ANALYZER, EVENTS, POSTS, IndexNames, index_settings, phrase_query, template_body
from qingfeng.elastic.templates import POSTS_REFRESH_INTERVAL


def test_names_derive_from_prefix_and_family() -> None:
    names = IndexNames("qingfeng", "posts")
    assert (names.template, names.pattern, names.write_alias, names.read_alias, names.first_index) == (
        "qingfeng-posts",
        "qingfeng-posts-*",
        "qingfeng-posts",
        "qingfeng-posts-read",
        "qingfeng-posts-000001",
    )


def test_template_uses_the_cjk_bigram_analyzer_for_chinese_text() -> None:
    body = template_body(POSTS, IndexNames("qf", "posts"), replicas=1)
    assert body["index_patterns"] == ["qf-posts-*"]
    template = body["template"]
    assert template["aliases"] == {"qf-posts-read": {}}
    assert template["settings"]["number_of_replicas"] == 1
    analyzer = template["settings"]["analysis"]["analyzer"][ANALYZER]
    assert analyzer["tokenizer"] == "standard"
    assert analyzer["filter"][-1] == "cjk_bigram"
    props = template["mappings"]["properties"]
    assert template["mappings"]["dynamic"] is False
    for field in ("title", "text_simplified"):
        assert props[field]["analyzer"] == ANALYZER
    # The original text is returned to readers but never searched: stored in _source, not indexed (version 3).
    assert props["text"] == {"type": "text", "index": False}
    assert body["version"] == body["meta"]["template_version"] >= 3
    assert props["title"]["fields"]["keyword"]["type"] == "keyword"
    assert props["id"]["type"] == props["region_codes"]["type"] == "keyword"
    assert props["created_at"]["type"] == "date"
    assert props["reposts"]["type"] == "long"


def test_posts_refresh_every_five_seconds_events_at_the_default() -> None:
    posts = template_body(POSTS, IndexNames("qf", "posts"))["template"]["settings"]
    assert posts["refresh_interval"] == POSTS_REFRESH_INTERVAL == "5s"
    assert "refresh_interval" not in template_body(EVENTS, IndexNames("qf", "events"))["template"]["settings"]


def test_unigram_fallback_keeps_the_analyzer_name() -> None:
    body = template_body(POSTS, IndexNames("qf", "posts"), cjk="unigram")
    assert body["template"]["settings"]["analysis"]["analyzer"][ANALYZER]["filter"] == ["lowercase"]
    assert body["meta"]["cjk"] == "unigram"


def test_phrase_query_requires_every_term_as_a_phrase() -> None:
    query = phrase_query("受贿  局长", fields=["title"])
    musts = query["bool"]["must"]
    assert [m["bool"]["should"] for m in musts] == [
        [{"match_phrase": {"title": {"query": "受贿"}}}],
        [{"match_phrase": {"title": {"query": "局长"}}}],
    ]
    assert phrase_query("   ") == {"match_none": {}}


def test_events_do_not_roll_over_and_share_the_analyzer() -> None:
    assert POSTS.rolls_over and not EVENTS.rolls_over
    assert EVENTS.properties["title"]["analyzer"] == ANALYZER
    assert index_settings()["number_of_shards"] == 1


def test_exported_names_exist() -> None:
    for name in elastic.__all__:
        assert hasattr(elastic, name), name
