from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from qingfeng.text import STAGE_BATCH, STAGED_MIN_CHARS, Enricher

from services.collector.core import DedupeKind, Deduper, RawPost, enrich_post, enrich_posts

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


def _stream() -> list[RawPost]:
    """Posts that exercise every answer of the deduper across batch boundaries: long originals, their exact and near
    copies (some in a later batch), short repeated texts (the enricher's cache), titles, traditional script."""
    body = "网曝某县县长公款吃喝、公车私用，当地纪委回应称已成立调查组，将依规依纪严肃处理，结果将及时向社会公布。"
    posts: list[RawPost] = []
    for i in range(3 * STAGE_BATCH + 5):
        at = NOW + timedelta(minutes=i)
        kind = i % 6
        if kind == 0:
            posts.append(RawPost(f"p{i}", f"第{i}号通报：{body * (1 + i % 4)}", at))
        elif kind == 1:
            posts.append(RawPost(f"p{i}", "//@某网友: " + f"第{i - 1}号通报：{body}".replace("县长", "縣長"), at))
        elif kind == 2:
            posts.append(RawPost(f"p{i}", "转发微博", at))
        elif kind == 3:
            posts.append(RawPost(f"p{i}", f"據悉，該局長涉嫌受賄{i}，紀委已介入調查。" * 3, at, title="廣州某局長被查"))
        elif kind == 4:
            posts.append(RawPost(f"p{i}", "", at, title=f"某镇长挪用公款{i % 2}"))
        else:
            posts.append(RawPost(f"p{i}", f"第{i - 5}号通报：{body}，网友热议", at))
    posts.append(posts[7])  # delivered again
    return posts


def test_enrich_posts_equals_enrich_post_one_by_one() -> None:
    posts = _stream()
    one, alone = Enricher(), Deduper()
    expected = [enrich_post(p.post_id, p.text, p.created_at, title=p.title, enricher=one, deduper=alone) for p in posts]
    batched = Deduper()
    assert enrich_posts(posts, enricher=Enricher(), deduper=batched) == expected
    kinds = {post.dedupe.kind for post in expected}
    assert kinds == {DedupeKind.NEW, DedupeKind.EXACT, DedupeKind.NEAR, DedupeKind.TOO_SHORT}
    assert len(batched) == len(alone)  # the same window afterwards
    # a copy arriving later is judged against the same originals either way
    later = RawPost("late", posts[0].text.replace("县长", "縣長") + "（转载）", NOW + timedelta(days=1))
    after_batches = enrich_posts([later], enricher=Enricher(), deduper=batched)[0]
    after_one_by_one = enrich_post(later.post_id, later.text, later.created_at, enricher=one, deduper=alone)
    assert after_batches == after_one_by_one
    assert after_batches.dedupe.duplicate_of == "p0"


def test_enrich_posts_of_nothing() -> None:
    assert enrich_posts([], enricher=Enricher(), deduper=Deduper()) == []


def test_enrich_posts_of_short_posts_only() -> None:
    # no batch has two texts long enough to stage: every post goes one by one
    posts = [p for p in _stream() if len(p.text) + len(p.title) < STAGED_MIN_CHARS]
    assert len(posts) > STAGE_BATCH
    one, alone = Enricher(), Deduper()
    expected = [enrich_post(p.post_id, p.text, p.created_at, title=p.title, enricher=one, deduper=alone) for p in posts]
    assert enrich_posts(posts, enricher=Enricher(), deduper=Deduper()) == expected
