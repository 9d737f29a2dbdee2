"""Chinese word segmentation (rjieba, a Rust jieba) and keyword extraction.

Segmentation is used for keywords only. The taggers match lexicon terms on the raw simplified text, so a term
is found even where the segmenter splits it differently. The lexicon terms are still added to the segmenter's
dictionary so that they come out as single keywords (超标准接待 rather than 超标准 + 接待).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from operator import itemgetter

import rjieba

__all__ = ["Segmenter"]

# A user word's frequency must be high enough for jieba to keep it whole, but an oversized one would
# swallow neighbouring characters; rjieba's own suggestion is the floor.
_MIN_USER_FREQ = 10
_HAS_CJK = re.compile("[\u4e00-\u9fff]")
_VERDICT_CACHE_MAX = 1 << 18
_COUNTER_MIN_TOKENS = 48
_COUNT = itemgetter(1)
# distinct tokens from which the most-frequent-first walk beats judging them all (measured on the shared posts joined)
_WALK_MIN_DISTINCT = 200


class Segmenter:
    """A private rjieba instance (the module-level one is shared process-wide) with an optional user dictionary.

    Build one per process: loading the default dictionary takes ~70 ms.
    """

    __slots__ = ("_jieba", "_stopwords", "_verdicts")

    def __init__(self, user_words: Iterable[str] = (), stopwords: Iterable[str] = ()) -> None:
        self._jieba = rjieba.Jieba()
        self._stopwords = frozenset(stopwords)
        self._verdicts: dict[str, bool] = {}  # token → may it be a keyword (cached: tokens repeat a lot)
        for word in user_words:
            self.add_word(word)

    def add_word(self, word: str) -> None:
        """Add ``word`` to the dictionary so that it is segmented as one token."""
        if not self._jieba.has_word(word):
            freq = max(int(self._jieba.suggest_freq(word)), _MIN_USER_FREQ)
            self._jieba.add_word(word, freq, None)

    def cut(self, text: str) -> list[str]:
        """Segment ``text`` (precise mode, with HMM for unknown words)."""
        if not text:
            return []
        tokens: list[str] = self._jieba.cut(text)
        return tokens

    def keywords(self, tokens: Iterable[str], limit: int = 8, boost: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The ``limit`` most salient tokens: frequent first, lexicon terms (``boost``) and longer words earlier.

        Single characters, numbers, punctuation, ASCII noise of one or two letters and stopwords are dropped.
        Without a corpus there is no idf, so salience is term frequency with a bonus for lexicon terms and length.
        """
        if isinstance(tokens, list) and len(tokens) < _COUNTER_MIN_TOKENS:
            # Counter costs ~1 µs to set up, more than a short post's whole loop; inline: most posts take this path
            verdicts = self._verdicts
            counts: dict[str, int] = {}
            for token in tokens:
                ok = verdicts.get(token)
                if ok is None:
                    ok = self._judge(token)
                if ok:
                    counts[token] = counts.get(token, 0) + 1
            if len(counts) <= 1:
                return tuple(counts)
            return self._ranked(counts, limit, boost)
        # A long token list is counted first (Counter, in C) and each distinct token judged once: a long text repeats
        # its tokens and punctuation many times. The bonuses add at most 12 < 16, so frequency decides first: only
        # tokens at least as frequent as the limit-th kept one can rank. From _WALK_MIN_DISTINCT distinct tokens on,
        # they are walked most frequent first (a stable sort: equal counts keep first-occurrence order) and judged
        # only until that floor is passed: a long text has hundreds of distinct tokens, most seen once, never judged
        # then. Below, sorting costs more than judging them all in first-occurrence order.
        tally = Counter(tokens)
        if len(tally) >= _WALK_MIN_DISTINCT:
            return self._walked_keywords(tally, limit, boost)
        verdicts = self._verdicts
        kept: dict[str, int] = {}
        for token, n in tally.items():
            ok = verdicts.get(token)
            if ok is None:
                ok = self._judge(token)
            if ok:
                kept[token] = n
        if len(kept) > limit:
            floor = sorted(kept.values(), reverse=True)[limit - 1]
            kept = {t: n for t, n in kept.items() if n >= floor}
        return self._ranked(kept, limit, boost)

    def _walked_keywords(self, counts: Counter[str], limit: int, boost: frozenset[str]) -> tuple[str, ...]:
        verdicts = self._verdicts
        kept: dict[str, int] = {}
        need = limit
        floor = 0
        for token, n in sorted(counts.items(), key=_COUNT, reverse=True):
            if n < floor:
                break
            ok = verdicts.get(token)
            if ok is None:
                ok = self._judge(token)
            if ok:
                kept[token] = n
                need -= 1
                if need == 0:
                    floor = n
        # kept is in (count, first occurrence) order, and the ranking's key puts the count first: a stable sort of it
        # gives what ranking the same tokens in first-occurrence order gives
        return self._ranked(kept, limit, boost)

    @staticmethod
    def _ranked(counts: dict[str, int], limit: int, boost: frozenset[str]) -> tuple[str, ...]:
        if len(counts) <= 1:
            return tuple(counts)
        # one int per token: frequency dominates, then lexicon membership, then length (capped at 4);
        # sorted() is stable, so the order of ``counts`` breaks the remaining ties
        # the keys made in one comprehension and read back by the dict's own method: no Python call per token
        rank = {t: -(n * 16 + (8 if t in boost else 0) + min(len(t), 4)) for t, n in counts.items()}
        ranked = sorted(counts, key=rank.__getitem__)
        return tuple(ranked[:limit])

    def _verdict(self, token: str) -> bool:
        """May ``token`` be a keyword at all (before counting)?"""
        if len(token) < 2 or token in self._stopwords:
            return False
        if token.isascii():
            return len(token) >= 3 and token.isalpha()
        return _HAS_CJK.search(token) is not None

    def _judge(self, token: str) -> bool:
        ok = self._verdict(token)
        verdicts = self._verdicts
        if len(verdicts) >= _VERDICT_CACHE_MAX:
            verdicts.clear()  # bounded memory; tokens repeat, so the cache refills with the common ones
        verdicts[token] = ok
        return ok
