from __future__ import annotations

from pathlib import Path

import pytest
import qingfeng.text
from qingfeng.text import Enricher, enrich, load_lexicons


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
