"""``simhash64_many`` (short texts fingerprinted together, a matrix row per text) gives ``simhash64``'s value for
every text: on the shared posts' canonical forms in slices as the collector's dedupe hands them over, on edge texts
(empty, shorter than a shingle, characters beyond the BMP, past the fingerprint limit, NULs) and on random batches
of every width class, for several shingle sizes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from qingfeng.text import fingerprint as fp
from qingfeng.text import normalize_for_hash, prepare, simhash64, simhash64_many

POSTS = Path(os.environ.get("QF_SHARED_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))
POSTS = POSTS / "weibo_posts.jsonl"
needs_data = pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)")

_EDGE = [
    "", "a", "ab", "abc", "\0\0", "哈" * 5, "\U0001f600\U0001f600x", "a\U00020000b" * 50, "x" * 70_000,
    "转发" * 16, "转发" * 17, "字" * (fp.PACKED_MIN_POSITIONS + 1), "字" * fp.PACKED_MIN_POSITIONS,
]  # fmt: skip


@needs_data
@pytest.mark.data
def test_equal_to_one_by_one_on_shared_data() -> None:
    with POSTS.open(encoding="utf-8") as handle:
        texts = [normalize_for_hash(prepare(json.loads(line)["text"]), simplified=True) for line in handle]
    assert len(texts) > 50_000
    for start in range(0, len(texts), 500):
        batch = texts[start : start + 500]
        assert simhash64_many(batch) == [simhash64(t) for t in batch], start


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_equal_to_one_by_one_on_edge_texts(size: int) -> None:
    batch = _EDGE * 2
    assert simhash64_many(batch, size) == [simhash64(t, size) for t in batch]
    assert simhash64_many(batch[:3], size) == [simhash64(t, size) for t in batch[:3]]  # too few: one by one


@pytest.mark.parametrize("size", [1, 3, 4])
def test_equal_to_one_by_one_on_random_batches(size: int) -> None:
    rnd = random.Random(size)
    alphabet = "ab\u4e00\u4e01\u4e02\U0001f600 "
    for _ in range(150):
        longest = rnd.choice([10, 40, 140])
        batch = [
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, longest))) for _ in range(rnd.randint(1, 40))
        ]
        assert simhash64_many(batch, size) == [simhash64(t, size) for t in batch]


def test_learns_new_characters_and_refuses_a_bad_size() -> None:
    fresh = [chr(0x9FA0 - i) + chr(0x9F00 + i) + "测试文本" + str(i) for i in range(20)]  # rare: not in the table yet
    assert simhash64_many(fresh) == [simhash64(t) for t in fresh]
    with pytest.raises(ValueError, match="shingle_size"):
        simhash64_many(["abc"], 0)
