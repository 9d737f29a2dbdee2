"""The fast routes of the text kernel give what the straightforward ones gave, on real and long texts.

- ``simhash64``'s packed route (texts of ``PACKED_MIN_POSITIONS`` shingles or more) against its per-position route;
- ``Segmenter.keywords`` (count first, rank only the tokens frequent enough) against the former rank-everything code;
- the noise regex whose alternatives start on a literal against the reference ``_NOISE``;
- ``Enricher.enrich_prepared_many`` (stage by stage over a batch) against ``enrich_prepared`` one text at a time.

Compared on the long-text fixture (always) and on the shared Weibo data (when ../shared/data is present).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest
from qingfeng.text import (
    Enricher,
    Lexicons,
    conversion,
    enrichment,
    normalize_for_hash,
    prepare,
    segment,
    simhash64,
    strip_noise,
    tagging,
)
from qingfeng.text import fingerprint as fp

REPO = Path(__file__).resolve().parents[3]
LONG_TEXTS = REPO / "tests" / "fixtures" / "long_texts" / "articles.jsonl"
POSTS = Path(os.environ.get("QF_SHARED_DATA", REPO / ".." / "shared" / "data")) / "weibo_posts.jsonl"


def _long_texts() -> list[str]:
    rows = [json.loads(line) for line in LONG_TEXTS.read_text(encoding="utf-8").splitlines()]
    return [prepare(f"{row['title']}\n{row['text']}") for row in rows]


def _shared_texts() -> list[str]:
    with POSTS.open(encoding="utf-8") as fh:
        return [prepare(json.loads(line)["text"] or "") for line in fh]


needs_data = pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)")


def _per_position(text: str, size: int, monkeypatch: pytest.MonkeyPatch) -> int:
    with monkeypatch.context() as m:
        m.setattr(fp, "PACKED_MIN_POSITIONS", 1 << 30)
        return simhash64(text, size)


def _packed(text: str, size: int, monkeypatch: pytest.MonkeyPatch) -> int:
    with monkeypatch.context() as m:
        m.setattr(fp, "PACKED_MIN_POSITIONS", 1)
        return simhash64(text, size)


def test_the_fixture_is_long() -> None:
    texts = _long_texts()
    assert len(texts) == 40
    assert all(500 <= len(t) <= 5_100 for t in texts)  # body 500-5,000 plus its title


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_packed_simhash_equals_per_position_on_long_texts(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    canonical = [normalize_for_hash(t, simplified=True) for t in _long_texts()]
    packed = sum(len(c) - size + 1 >= fp.PACKED_MIN_POSITIONS for c in canonical)
    assert packed >= 30  # by default most take the packed route, the shortest the per-position one
    for text in canonical:
        expected = _per_position(text, size, monkeypatch)
        assert simhash64(text, size) == expected
        assert _packed(text, size, monkeypatch) == expected


def test_packed_simhash_on_edge_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    # shorter than a shingle (padded), lone surrogates, astral characters, one character repeated
    for text in ["", "a", "ab", "abc", "a\U0001f600b\ud800c" * 40, "哈" * 500, "x" * 61_000]:
        for size in (1, 3):
            assert _packed(text, size, monkeypatch) == _per_position(text, size, monkeypatch)


@needs_data
@pytest.mark.data
def test_packed_simhash_equals_per_position_on_shared_data(monkeypatch: pytest.MonkeyPatch) -> None:
    canonical = [c for c in (normalize_for_hash(t, simplified=True) for t in _shared_texts()) if len(c) >= 3]
    assert len(canonical) > 10_000
    with monkeypatch.context() as m:
        m.setattr(fp, "PACKED_MIN_POSITIONS", 1)
        packed = [simhash64(c) for c in canonical]
    with monkeypatch.context() as m:
        m.setattr(fp, "PACKED_MIN_POSITIONS", 1 << 30)
        per_position = [simhash64(c) for c in canonical]
    assert packed == per_position


def _former_keywords(
    verdicts: dict[str, bool], judge: object, tokens: Iterable[str], limit: int, boost: frozenset[str]
) -> tuple[str, ...]:
    """``Segmenter.keywords`` as it was before counting came first (kept here as the reference)."""
    counts: dict[str, int] = {}
    for token in tokens:
        ok = verdicts.get(token)
        if ok is None:
            ok = judge(token)  # type: ignore[operator]
        if ok:
            counts[token] = counts.get(token, 0) + 1
    if not counts:
        return ()
    if len(counts) > 1:
        ranked = sorted(counts, key=lambda t: -(counts[t] * 16 + (8 if t in boost else 0) + min(len(t), 4)))
        return tuple(ranked[:limit])
    return tuple(counts)


def _check_keywords(enricher: Enricher, texts: Iterable[str]) -> int:
    segmenter, boost = enricher.segmenter, enricher.tagger.terms
    checked = 0
    for text in texts:
        tokens = segmenter.cut(strip_noise(text))
        for limit in (1, 3, 8):
            expected = _former_keywords(segmenter._verdicts, segmenter._judge, tokens, limit, boost)
            assert segmenter.keywords(tokens, limit, boost) == expected, text[:40]
        checked += 1
    return checked


def test_keywords_unchanged_on_long_texts(enricher: Enricher) -> None:
    assert _check_keywords(enricher, _long_texts()) == 40


@needs_data
@pytest.mark.data
def test_keywords_unchanged_on_shared_data(enricher: Enricher) -> None:
    assert _check_keywords(enricher, _shared_texts()) > 50_000


def test_packed_simhash_after_its_table_is_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    # characters beyond the BMP (emoji, rare ideographs) are kept in a bounded dict: every text below overflows it
    monkeypatch.setattr(fp, "_TABLE_MAX", 64)
    monkeypatch.setattr(fp, "_packed", {})
    for start in (0x20000, 0x1F300, 0x20010):
        text = "".join(chr(start + (i * 7) % 700) if i % 3 else chr(0x4E00 + i % 50) for i in range(900))
        assert _packed(text, 3, monkeypatch) == _per_position(text, 3, monkeypatch)


def test_packed_simhash_learns_new_characters_between_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    # the dense table is filled on first use: a text with characters never seen before, then one mixing old and new
    monkeypatch.setattr(fp, "_packed", {})
    texts = ["".join(chr(0x4E00 + (i * 13 + j) % 2000) for i in range(300)) for j in range(0, 3000, 700)]
    texts.append("".join(texts)[::7] + "\u3000\uff21\ud801x")
    for text in texts:
        for size in (2, 3):
            assert _packed(text, size, monkeypatch) == _per_position(text, size, monkeypatch)


def _reference_normalize(text: str) -> str:
    return conversion._NON_WORD.sub("", conversion._NOISE.sub("", text.lower()))


def test_normalize_for_hash_reuses_the_stripped_text_only_when_it_is_the_same() -> None:
    texts = [
        "转发微博 @小明 你好，http://t.cn/abc 看这个[哈哈]",
        "完全不同的文本 //@老王: 真的吗",
        "Upper CASE 文本 @Someone HTTP://X.CN/a",  # lower() changes it: the stripped text cannot be reused
        "",
    ]
    for first in texts:
        for second in texts:
            conversion.strip_noise(first)
            assert normalize_for_hash(second, simplified=True) == _reference_normalize(second), (first, second)
    # the same string, as the collector passes it: strip for keywords, then normalise for hashing
    for text in texts:
        assert conversion.strip_noise(text) == conversion._NOISE.sub("", text)
        assert normalize_for_hash(text, simplified=True) == _reference_normalize(text)


def _matchers(enricher: Enricher) -> list[tagging._Matcher]:
    tagger = enricher.tagger
    return [tagger._corruption._matcher, tagger._officials._matcher, tagger._offline._matcher, tagger._region_matcher]


def _check_matchers(enricher: Enricher, texts: Iterable[str]) -> int:
    found = 0
    for matcher in _matchers(enricher):
        index = matcher._index
        for text in texts:
            expected = [(m.group(), index[m.group()], m.start()) for m in matcher.finditer(text)]
            assert matcher.matches(text) == expected, text[:40]
            found += len(expected)
    return found


def test_automata_find_what_the_trie_regexes_find_on_long_texts(enricher: Enricher) -> None:
    assert _check_matchers(enricher, _long_texts()) > 2_000


def test_automata_on_edge_texts(enricher: Enricher) -> None:
    # astral characters before a term (offsets count code points), a lone surrogate (the regex answers), empty text
    texts = ["\U0001f600贪污\U00020000受贿临沂市委书记", "贪污\ud800受贿 临沂市委书记\udfff", "", "市长江大桥"]
    assert _check_matchers(enricher, texts) >= 8
    hits = enricher.tagger.tag("贪污\ud800受贿").corruption
    assert [(h.term, h.start) for h in hits] == [("贪污", 0), ("受贿", 3)]


@needs_data
@pytest.mark.data
def test_automata_find_what_the_trie_regexes_find_on_shared_data(enricher: Enricher) -> None:
    assert _check_matchers(enricher, _shared_texts()) > 3_000


def test_non_word_removal_in_numpy_equals_the_regex_on_every_bmp_character() -> None:
    every = "".join(chr(cp) for cp in range(1 << 16))  # lone surrogates included
    assert len(every) >= conversion._VECTOR_FROM
    assert conversion._drop_non_word(every) == conversion._NON_WORD.sub("", every)
    for text in ["a_b，c" * 200, "x\U0001f600y。" * 200, "短文本_，"]:  # astral characters and short texts: the regex
        assert conversion._drop_non_word(text) == conversion._NON_WORD.sub("", text)


def test_keywords_unchanged_when_the_verdict_cache_overflows(
    enricher: Enricher, lexicons: Lexicons, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(segment, "_VERDICT_CACHE_MAX", 64)  # every long text below overflows it
    small = segment.Segmenter(enricher.tagger.terms, lexicons.stopwords)
    boost = enricher.tagger.terms
    for text in _long_texts()[:10]:
        tokens = small.cut(strip_noise(text))
        expected = _former_keywords({}, small._verdict, tokens, 8, boost)
        assert small.keywords(tokens, 8, boost) == expected
        assert len(small._verdicts) <= len(set(tokens))


def _noise_cases() -> list[str]:
    return [
        "回复@小明:你说得对 http://t.cn/abc",
        "回复回复@x 转发微博",  # only the leading 回复 goes
        "说回复@x:好",  # not leading: only the mention goes
        "HTTP://X.CN/A www.example.com/a?b=1 https://t.cn/z中文紧跟",
        "//@老王: 真的吗//@小李：假的 @某人 [哈哈][不是表情 ] [太长了的一个表情名字啊]",
        "@@a @-b_c [[x]] //@ 转发微博转发微博 ww.x wwwx h",
        "",
        "回复",
    ]


def test_noise_scan_equals_the_reference_regex() -> None:
    for text in _noise_cases():
        for variant in (text, text.lower(), text * 3):
            assert conversion._sub_noise(variant) == conversion._NOISE.sub("", variant), variant
            assert strip_noise(variant) == conversion._NOISE.sub("", variant)


@needs_data
@pytest.mark.data
def test_noise_scan_equals_the_reference_regex_on_shared_data() -> None:
    texts = _shared_texts()
    changed = 0
    for text in texts:
        for variant in (text, text.lower()):
            expected = conversion._NOISE.sub("", variant)
            assert conversion._sub_noise(variant) == expected, variant
            changed += expected != variant
    assert changed > 10_000  # the data has plenty of mentions, chains, URLs and emoticons


def test_normalize_for_hash_after_more_texts_than_it_keeps_stripped() -> None:
    texts = [f"第{i}条 @用户{i} 转发微博 http://t.cn/{i} [哈哈] Upper{i}" for i in range(3 * conversion._STRIPPED_KEPT)]
    for text in texts:
        strip_noise(text)
    assert len(conversion._stripped) <= conversion._STRIPPED_KEPT
    for text in texts:
        assert normalize_for_hash(text, simplified=True) == _reference_normalize(text)
        assert normalize_for_hash(text.lower(), simplified=True) == _reference_normalize(text)


def test_both_keyword_routes_equal_the_former_ranking(enricher: Enricher, monkeypatch: pytest.MonkeyPatch) -> None:
    # the most-frequent-first walk (texts of many distinct tokens) and judging every distinct token (fewer)
    texts = _long_texts()
    for walk_from in (1, 1 << 30):
        monkeypatch.setattr(segment, "_WALK_MIN_DISTINCT", walk_from)
        assert _check_keywords(enricher, texts) == 40
        assert _check_keywords(enricher, [t[:300] for t in texts]) == 40


def _one_by_one(lexicons: Lexicons, texts: list[str]) -> list[object]:
    fresh = Enricher(lexicons)
    return [fresh.enrich_prepared(t) for t in texts]


def test_enrich_prepared_many_equals_one_by_one(lexicons: Lexicons) -> None:
    # long texts, short repeated ones (the cache), empty ones, across several stage batches
    long_texts = _long_texts()
    texts: list[str] = []
    for i, text in enumerate(long_texts):
        texts += [text, "转发微博", "", text[:30], f"短{i % 3}", text[: 200 + i]]
    assert len(texts) > 3 * enrichment.STAGE_BATCH
    batched = Enricher(lexicons)
    assert batched.enrich_prepared_many(texts) == _one_by_one(lexicons, texts)
    assert batched.enrich_prepared_many([]) == []
    assert batched.enrich_prepared_many(texts[:1]) == _one_by_one(lexicons, texts[:1])
    short = [t[: enrichment.STAGED_MIN_CHARS - 1] for t in texts]  # nothing to stage
    assert batched.enrich_prepared_many(short) == _one_by_one(lexicons, short)


@needs_data
@pytest.mark.data
def test_enrich_prepared_many_equals_one_by_one_on_shared_data(lexicons: Lexicons) -> None:
    texts = _shared_texts()
    assert Enricher(lexicons).enrich_prepared_many(texts) == _one_by_one(lexicons, texts)
