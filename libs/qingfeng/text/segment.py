"""Chinese word segmentation (rjieba, a Rust jieba) and keyword extraction.

Segmentation is used for keywords only. The taggers match lexicon terms on the raw simplified text, so a term
is found even where the segmenter splits it differently. The lexicon terms are still added to the segmenter's
dictionary so that they come out as single keywords (超标准接待 rather than 超标准 + 接待).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import rjieba

__all__ = ["Segmenter"]

# A user word's frequency must be high enough for jieba to keep it whole, but an oversized one would
# swallow neighbouring characters; rjieba's own suggestion is the floor.
_MIN_USER_FREQ = 10
_HAS_CJK = re.compile("[\u4e00-\u9fff]")
_VERDICT_CACHE_MAX = 1 << 18
_COUNTER_MIN_TOKENS = 48


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
        verdicts = self._verdicts
        # A long token list is counted first (Counter, in C) and each distinct token judged once: a long text repeats
        # its tokens and punctuation many times. Counter costs ~1 µs to set up, more than a short post's whole loop,
        # so short lists keep the loop. Both keep first-occurrence order, which the ranking's ties rely on.
        counts: dict[str, int] = {}
        if isinstance(tokens, list) and len(tokens) < _COUNTER_MIN_TOKENS:
            for token in tokens:
                ok = verdicts.get(token)
                if ok is None:
                    ok = self._judge(token)
                if ok:
                    counts[token] = counts.get(token, 0) + 1
        else:
            for token, n in Counter(tokens).items():
                ok = verdicts.get(token)
                if ok is None:
                    ok = self._judge(token)
                if ok:
                    counts[token] = n
        if not counts:
            return ()
        if len(counts) > 1:
            candidates: Iterable[str] = counts
            if len(counts) > limit:
                # The bonuses add at most 12 < 16, so frequency decides first: only tokens at least as frequent as
                # the limit-th can rank, and ranking just those (in their first-occurrence order) gives the same
                # head as ranking all. A long text has hundreds of distinct tokens, most of them seen once.
                floor = sorted(counts.values(), reverse=True)[limit - 1]
                candidates = [t for t, n in counts.items() if n >= floor]
            # one int per token: frequency dominates, then lexicon membership, then length (capped at 4);
            # sorted() is stable, so first occurrence breaks the remaining ties
            ranked = sorted(candidates, key=lambda t: -(counts[t] * 16 + (8 if t in boost else 0) + min(len(t), 4)))
            return tuple(ranked[:limit])
        return tuple(counts)

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
