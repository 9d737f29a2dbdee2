from __future__ import annotations

import hashlib
import random

import pytest
from qingfeng.text import MAX_FINGERPRINT_CHARS, SimhashIndex, hamming, normalize_for_hash, simhash64


def _reference(text: str, n: int = 3) -> int:
    """SimHash by the definition: distinct tabulation-hashed shingles, majority vote per bit."""
    text = text.ljust(n, "\0")
    hashes = set()
    for i in range(len(text) - n + 1):
        h = 0
        for k in range(n):
            person = f"qf-simhash-{k}".encode()
            digest = hashlib.blake2b(text[i + k].encode("utf-8", "surrogatepass"), digest_size=8, person=person)
            h ^= int.from_bytes(digest.digest(), "little")
        hashes.add(h)
    return sum(1 << bit for bit in range(64) if 2 * sum((h >> bit) & 1 for h in hashes) > len(hashes))


@pytest.mark.parametrize(
    "text", ["临沂市委书记奸淫上百幼女燕赵都市网", "ab", "abc", "哈" * 30 + "好可爱", "x" * 50, "a\U0001f600b\ud800c"]
)
def test_simhash_matches_definition(text: str) -> None:
    assert simhash64(text) == _reference(text)


def test_simhash_matches_definition_on_long_random_text() -> None:
    rng = random.Random(3)
    text = "".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(2000))
    assert simhash64(text) == _reference(text)
    assert simhash64(text, 2) == _reference(text, 2)


BASE = (
    "【湖南司法厅副厅长儿子婚宴“警车门”调查】“宴席赛过皇宫，20辆警车助阵，百万礼金入囊”，这是近日网络盛传的湖南省"
    "司法厅副厅长王某儿子婚宴景象。记者调查发现，婚宴当天确有多辆警车出现在酒店门口，当地纪委已介入调查。"
)


@pytest.mark.parametrize(
    ("edited", "at_most"),
    [
        ("#关注# " + BASE, 1),  # a hashtag in front
        (BASE.replace("20辆", "二十辆"), 2),  # one figure rewritten
        (BASE + "太过分了！", 3),  # a comment appended
    ],
)
def test_small_edits_stay_within_three_bits(edited: str, at_most: int) -> None:
    assert hamming(simhash64(normalize_for_hash(BASE)), simhash64(normalize_for_hash(edited))) <= at_most


def test_simhash_properties() -> None:
    other = "今年春节假期全国旅游接待总人次同比增长百分之十五，旅游收入创新高，各地景区迎来客流高峰。"
    assert simhash64("") == 0
    assert 0 <= simhash64(BASE) < 2**64
    assert hamming(simhash64(BASE), simhash64(other)) > 10
    # a rewritten sentence is beyond the near-duplicate radius: that is the grader's clustering job
    rewritten = BASE.replace("当地纪委已介入调查", "纪委介入")
    assert hamming(simhash64(normalize_for_hash(BASE)), simhash64(normalize_for_hash(rewritten))) > 3
    assert simhash64("哈哈哈哈好可爱") == simhash64("哈哈哈哈哈哈哈哈哈哈好可爱")  # repeats count once


def test_only_the_first_chars_are_fingerprinted() -> None:
    head = "".join(chr(0x4E00 + i % 500) for i in range(MAX_FINGERPRINT_CHARS))
    assert simhash64(head + "尾巴不同") == simhash64(head + "完全另一段")


def test_index_finds_everything_within_three_bits() -> None:
    rng = random.Random(11)
    index = SimhashIndex(bands=4)
    base = rng.getrandbits(64)
    index.add("base", base)
    for i in range(500):
        index.add(f"noise{i}", rng.getrandbits(64))
    for distance in range(4):
        probe = base
        for bit in rng.sample(range(64), distance):
            probe ^= 1 << bit
        assert ("base", distance) in index.query(probe)
    index.remove("base", base)
    assert all(key != "base" for key, _ in index.query(base))


def test_index_results_are_nearest_first_and_bounded() -> None:
    index = SimhashIndex()
    index.add("far", 0b111)
    index.add("near", 0b1)
    index.add("exact", 0)
    index.add("too_far", 0b1111)
    assert index.query(0) == [("exact", 0), ("near", 1), ("far", 3)]
    assert index.query(0, max_distance=1) == [("exact", 0), ("near", 1)]
    with pytest.raises(ValueError, match="exceeds"):
        index.query(0, max_distance=4)


def test_index_rejects_bad_bands() -> None:
    with pytest.raises(ValueError):
        SimhashIndex(bands=5)
