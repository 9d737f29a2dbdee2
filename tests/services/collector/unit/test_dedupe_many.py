"""``Deduper.check_canonical_many`` (fingerprints computed together, then each post classified in order) gives the
answers ``check`` gives one post at a time, and leaves the same window: on the shared posts in slices as the
pipeline hands them over (with repeats, exact copies within a slice, re-deliveries and a window small enough to evict
during a call), and for a naive time, which raises after the posts before it were classified, as one by one."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qingfeng.text import normalize_for_hash, prepare

from services.collector.core import DedupeConfig, Deduper, DedupeResult

POSTS = Path(os.environ.get("QF_SHARED_DATA", Path(__file__).resolve().parents[4].parent / "shared" / "data"))
POSTS = POSTS / "weibo_posts.jsonl"
needs_data = pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _state(d: Deduper) -> tuple[object, ...]:
    return (
        [(k, vars(v) if hasattr(v, "__dict__") else (v.content_hash, v.simhash, v.created_at, v.last_seen))
         for k, v in d._originals.items()],
        dict(d._by_hash),
        list(d._answers.items()),
        d._newest,
        d._until_sweep,
        [dict(t) for t in d._index._tables],
    )  # fmt: skip


def _both(posts: list[tuple[str, str, datetime]], config: DedupeConfig, slice_size: int) -> None:
    one, many = Deduper(config), Deduper(config)
    expected: list[DedupeResult] = [one.check(p, text, at, simplified=True) for p, text, at in posts]
    got: list[DedupeResult] = []
    for start in range(0, len(posts), slice_size):
        batch = posts[start : start + slice_size]
        got += many.check_canonical_many([(p, normalize_for_hash(t, simplified=True), at) for p, t, at in batch])
    assert got == expected
    assert _state(many) == _state(one)


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("config", [DedupeConfig(), DedupeConfig(max_entries=300, max_remembered=50)])
def test_equal_to_one_by_one_on_shared_data(config: DedupeConfig) -> None:
    with POSTS.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(20_000), handle, strict=False)]
    posts = [(f"p{i}", prepare(r["text"]), T0 + timedelta(seconds=i)) for i, r in enumerate(rows)]
    # re-deliveries (the same id again, once with another text) and copies inside a slice
    posts += [*posts[100:400], ("p5", "完全不同的一段新文字内容用来替换", T0), *posts[:50]]
    _both(posts, config, 500)
    kinds = {r.kind.name for r in Deduper(config).check_canonical_many(
        [(p, normalize_for_hash(t, simplified=True), at) for p, t, at in posts[:5000]])}  # fmt: skip
    assert {"NEW", "EXACT", "TOO_SHORT"} <= kinds


def test_small_batches_and_copies_within_one_call() -> None:
    base = "某县交通局局长收受贿赂二十万元被双规"
    texts = [base + "!" * (i % 3) + ("改" if i % 5 == 0 else "") for i in range(40)]
    posts = [(f"q{i}", text, T0 + timedelta(minutes=i)) for i, text in enumerate(texts)]
    for size in (1, 3, 40):
        _both(posts, DedupeConfig(), size)


def test_a_naive_time_raises_after_the_posts_before_it() -> None:
    d = Deduper()
    posts = [("a", "某地官员贪污受贿被查处的消息", T0), ("b", "另一条完全不同的微博内容很长", datetime(2026, 1, 1))]
    with pytest.raises(ValueError, match="timezone-aware"):
        d.check_canonical_many([(p, normalize_for_hash(t, simplified=True), at) for p, t, at in posts])
    assert len(d) == 1  # "a" was classified (NEW) before "b" raised
