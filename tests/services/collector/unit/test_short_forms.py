"""The short-text memos of the collector's core give what computing anew gives: ``enrich_posts``' prepared and
canonical forms of short untitled texts, and the ``Deduper``'s content hash and TOO_SHORT answer per short canonical
text, also when the memos are emptied mid-stream (bounded) or keep nothing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qingfeng.text import Enricher, normalize_for_hash, prepare

from services.collector.core import (
    DedupeConfig,
    DedupeKind,
    Deduper,
    DedupeResult,
    RawPost,
    enrich_post,
    enrich_posts,
)
from services.collector.core import dedupe as dedupe_module
from services.collector.core import enrich as enrich_module

POSTS = Path(os.environ.get("QF_SHARED_DATA", Path(__file__).resolve().parents[4].parent / "shared" / "data"))
POSTS = POSTS / "weibo_posts.jsonl"
needs_data = pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)")
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Short texts that prepare changes (full width, traditional script, upper case), repeats, noise only, and long ones.
_HANDMADE = [
    "转发微博", "转发微博", "ＡＢＣ官員", "abc官员", "縣長貪腐", "县长贪腐", "哈哈哈哈哈哈哈哈", "[哈哈][哈哈]", "",
    "//@某人: 转发微博", "@张三 局长受贿", "局长受贿！！", "某县交通局局长收受贿赂二十万元被双规，网友热议此事",
    "某县交通局局长收受贿赂二十万元被双规，网友热议此事！", "顶", "http://t.cn/abc", "縣長貪腐",
]  # fmt: skip


def _handmade_posts() -> list[RawPost]:
    posts = [RawPost(f"h{i}", text, T0 + timedelta(minutes=i)) for i, text in enumerate(_HANDMADE * 3)]
    posts.append(RawPost("t1", "转发微博", T0, title="縣長被查"))  # a title: never from the memo
    posts.append(RawPost("h0", "转发微博", T0))  # delivered again
    return posts


@pytest.mark.parametrize("kept", [1, 3, 8192])
def test_enrich_posts_with_the_short_memo_equals_one_by_one(kept: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enrich_module, "_short", {})
    monkeypatch.setattr(enrich_module, "_SHORT_KEPT", kept)
    posts = _handmade_posts()
    one, alone = Enricher(), Deduper()
    expected = [enrich_post(p.post_id, p.text, p.created_at, title=p.title, enricher=one, deduper=alone) for p in posts]
    got = enrich_posts(posts, enricher=Enricher(), deduper=Deduper())
    assert got == expected
    assert {r.dedupe.kind for r in got} >= {DedupeKind.NEW, DedupeKind.EXACT, DedupeKind.TOO_SHORT}
    assert len(enrich_module._short) <= kept
    # what the memo holds is what prepare and normalize_for_hash give
    for text, (simple, canonical) in enrich_module._short.items():
        assert (simple, canonical) == (prepare(text), normalize_for_hash(prepare(text), simplified=True))


def _answers(
    posts: list[tuple[str, str, datetime]], config: DedupeConfig
) -> tuple[list[DedupeResult], int, list[tuple[str, str]]]:
    d = Deduper(config)
    got: list[DedupeResult] = []
    for start in range(0, len(posts), 500):
        got += d.check_canonical_many(posts[start : start + 500])
    got += [d.check(p, text, at, simplified=True) for p, text, at in posts[:200]]  # one by one, re-deliveries
    return got, len(d), sorted(d._by_hash.items())


def _canonical(texts: list[str]) -> list[tuple[str, str, datetime]]:
    return [(f"p{i}", normalize_for_hash(prepare(t), simplified=True), T0 + timedelta(seconds=i)) for i, t in
            enumerate(texts)]  # fmt: skip


@pytest.mark.parametrize("kept", [1, 5, 8192])
def test_dedupe_forms_memo_equals_computing_anew(kept: int, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _HANDMADE * 20
    if POSTS.is_file():
        with POSTS.open(encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for _, line in zip(range(5_000), handle, strict=False)]
    posts = _canonical(texts)
    config = DedupeConfig(max_entries=300, max_remembered=50)
    monkeypatch.setattr(dedupe_module, "_FORMS_MAX_CHARS", -1)  # nothing kept: every form computed anew
    expected = _answers(posts, config)
    monkeypatch.setattr(dedupe_module, "_FORMS_MAX_CHARS", 24)
    monkeypatch.setattr(dedupe_module, "_FORMS_KEPT", kept)
    assert _answers(posts, config) == expected
    kinds = [r.kind for r in expected[0]]
    assert kinds.count(DedupeKind.TOO_SHORT) > 40


def test_a_kept_too_short_answer_is_the_one_made_anew() -> None:
    d = Deduper()
    canonical = normalize_for_hash("转发微博哈哈哈", simplified=True)
    first = d.check_canonical_many([("a", canonical, T0)])[0]
    second = d.check_canonical_many([("b", canonical, T0)])[0]
    assert first.kind is DedupeKind.TOO_SHORT and second == first
    assert d._forms[canonical] == (first.content_hash, first)
    assert len(d) == 0  # nothing too short enters the window
