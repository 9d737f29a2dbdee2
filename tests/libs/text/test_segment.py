from __future__ import annotations

from qingfeng.text import Enricher, Segmenter


def test_cut_and_user_words() -> None:
    plain = Segmenter()
    assert plain.cut("") == []
    assert "".join(plain.cut("有人超标准接待领导")) == "有人超标准接待领导"
    custom = Segmenter(["超标准接待"])
    assert "超标准接待" in custom.cut("有人超标准接待领导")


def test_keywords_filter_and_rank() -> None:
    seg = Segmenter(stopwords=["我们"])
    tokens = ["我们", "的", "贪官", "，", "2015", "ok", "hello", "贪官", "公款吃喝", "视察"]
    assert seg.keywords(tokens, limit=3, boost=frozenset({"公款吃喝"})) == ("贪官", "公款吃喝", "hello")
    assert seg.keywords(["的", "了", "。"]) == ()


def test_enrichment_keywords_skip_urls_mentions_and_stopwords(enricher: Enricher) -> None:
    result = enricher.enrich("转发微博 我们 @某某人 http://t.cn/abcdef 广州市公安局长公车私用[怒]")
    assert "公车私用" in result.keywords
    assert not {"我们", "转发", "微博", "abcdef", "某某人", "http"} & set(result.keywords)
