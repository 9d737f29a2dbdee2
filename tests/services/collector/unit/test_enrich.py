from __future__ import annotations

from datetime import UTC, datetime

import pytest
from qingfeng.text import Enricher

from services.collector.core import DedupeKind, Deduper, enrich_post

NOW = datetime(2015, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher()


def test_enrich_post_converts_once_and_tags_title_and_text(enricher: Enricher) -> None:
    post = enrich_post(
        "n1",
        "據悉，該局長涉嫌受賄，紀委已介入調查。",
        NOW,
        title="廣州某局長被查",
        enricher=enricher,
        deduper=Deduper(),
    )
    assert post.title == "广州某局长被查"
    assert post.text == "据悉，该局长涉嫌受贿，纪委已介入调查。"
    assert post.enrichment.simplified == "广州某局长被查\n据悉，该局长涉嫌受贿，纪委已介入调查。"
    assert post.enrichment.tags.primary_region == "440100"  # the place is only in the title
    assert set(post.enrichment.tags.corruption_categories) == {"discipline", "bribery_taking"}
    assert post.enrichment.relevance.score > 0.8
    assert post.dedupe.kind is DedupeKind.NEW


def test_enrich_post_links_copies(enricher: Enricher) -> None:
    deduper = Deduper()
    text = "网曝某县县长公款吃喝、公车私用，当地纪委回应称已成立调查组，将依规依纪严肃处理，结果将及时向社会公布。"
    first = enrich_post("w1", text, NOW, enricher=enricher, deduper=deduper)
    copy = enrich_post("w2", "//@某网友: " + text.replace("县长", "縣長"), NOW, enricher=enricher, deduper=deduper)
    repost = enrich_post("w3", "转发微博", NOW, enricher=enricher, deduper=deduper)
    assert first.dedupe.kind is DedupeKind.NEW
    assert (copy.dedupe.kind, copy.dedupe.duplicate_of) == (DedupeKind.EXACT, "w1")
    assert repost.dedupe.kind is DedupeKind.TOO_SHORT
    assert repost.enrichment.relevance.score == 0.0


def test_title_without_text(enricher: Enricher) -> None:
    post = enrich_post("t1", "", NOW, title="某镇长挪用公款", enricher=enricher, deduper=Deduper())
    assert post.text == ""
    assert post.enrichment.tags.corruption_categories == ("misappropriation",)
