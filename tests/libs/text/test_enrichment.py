from __future__ import annotations

from pathlib import Path

import pytest
import qingfeng.text
from qingfeng.text import Enricher, Lexicons, enrich, enrichment, load_lexicons


def test_public_api_is_exported() -> None:
    for name in qingfeng.text.__all__:
        assert hasattr(qingfeng.text, name), name
    assert len(set(qingfeng.text.__all__)) == len(qingfeng.text.__all__)


def test_enrich_end_to_end() -> None:
    result = enrich("網曝：臨沂市委書記貪污受賄，數百名群眾聚集上訪 http://t.cn/x")
    assert result.simplified.startswith("网曝：临沂市委书记贪污受贿")
    assert result.tags.primary_region == "371300"
    assert result.relevance.score > 0.9
    assert result.lexicon_version.startswith("corruption@")
    assert "市委书记" in result.keywords


def test_enrich_prepared_skips_conversion(enricher: Enricher) -> None:
    assert enricher.enrich_prepared("貪污").tags.corruption == ()  # not converted, so not matched
    assert enricher.enrich("貪污").tags.corruption != ()


def test_lexicons_and_extra_files_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either"):
        Enricher(load_lexicons(), extra_lexicons=[tmp_path / "x.yaml"])


def test_enrichment_is_frozen(enricher: Enricher) -> None:
    result = enricher.enrich("贪污")
    with pytest.raises(AttributeError):
        result.simplified = "x"  # type: ignore[misc]


def test_repeated_short_texts_come_from_the_cache_and_equal_a_fresh_enrichment(lexicons: Lexicons) -> None:
    cached = Enricher(lexicons)
    texts = ["转发微博", "临沂市委书记贪污受贿被双规", "转发微博", "", "临沂市委书记贪污受贿被双规"]
    first = [cached.enrich_prepared(t) for t in texts]
    assert first[0] is first[2] and first[1] is first[4]  # the same object for the same text
    for text, got in zip(texts, first, strict=True):
        assert got == cached._enrich(text)  # what an enrichment without the cache gives
    cached.clear_cache()
    again = cached.enrich_prepared(texts[1])
    assert again == first[1] and again is not first[1]


def test_the_cache_is_bounded_and_skips_long_texts(lexicons: Lexicons, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.setattr(enrichment, "CACHE_ENTRIES", 3)
    cached = Enricher(lexicons)
    for i in range(10):
        cached.enrich_prepared(f"第{i}条帖子")
    assert list(cached._cache) == ["第9条帖子"]  # forgotten when full (at 3, 6 and 9 entries), then refilled
    long_text = "局长受贿" * (enrichment.CACHE_MAX_CHARS // 4 + 1)
    assert cached.enrich_prepared(long_text) == cached.enrich_prepared(long_text)
    assert long_text not in cached._cache
