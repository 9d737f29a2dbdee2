"""The ``words`` field of posts: text cut into words by rjieba, one space between words (see ``templates``).

Writers (the collector's indexer) and readers (the gateway's query builder) must cut the same way, or a query word
would never equal an indexed word: both use ``default_splitter()``, built on the built-in lexicons' terms, which
the collector's enrichment adds to its segmenter too (so 超标准接待 stays one word in both places).

Every token but whitespace is kept, lower-cased (the ``whitespace`` analyzer does not fold case). Punctuation stays a
token of its own, so a phrase of words never spans a comma, and nothing is removed (no stopwords, no URL
stripping): the field is the text re-spaced, and ``join_fragment`` turns a highlighted fragment back into the text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from qingfeng.text.segment import Segmenter

__all__ = ["WordSplitter", "default_splitter", "join_fragment"]

# Han characters and punctuation: a space between two of them was put there by the splitter, not the author.
_CJK: Final = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef!-/:-@\\[-`{-~"
# A space between two such characters, possibly with highlight tags on either side of it.
_INSERTED_SPACE: Final = re.compile(rf"([{_CJK}](?:</?em>)*) ((?:</?em>)*[{_CJK}])")


class WordSplitter:
    """Cuts text into index words with one ``Segmenter`` (build once: loading the dictionary takes ~70 ms)."""

    __slots__ = ("_segmenter",)

    def __init__(self, segmenter: Segmenter) -> None:
        self._segmenter = segmenter

    def words(self, text: str) -> list[str]:
        """The words of ``text`` (already simplified and width-normalised), lower-cased, without whitespace."""
        return [token.lower() for token in self._segmenter.cut(text) if _is_word(token)]

    def field(self, text: str) -> str:
        """The ``words`` field value of ``text``: its words joined by single spaces."""
        if _WHITESPACE.search(text) is None:
            # No whitespace, so no whitespace token: the tokens joined, then lower-cased at once (the same string:
            # lower-casing looks across characters only for a final sigma, and never across a space; tested on every
            # shared post and on Greek words). A quarter of the indexer's CPU went into the per-token loop.
            return " ".join(self._segmenter.cut(text)).lower()
        return " ".join(self.words(text))


def _is_word(token: str) -> bool:
    return not token.isspace()


# ``\s`` of a str pattern is ``str.isspace``.
_WHITESPACE: Final = re.compile(r"\s")


@lru_cache(maxsize=1)
def default_splitter() -> WordSplitter:
    """The process-wide splitter over the built-in lexicons (the collector's enrichment segmenter)."""
    # Imported here: the text stack (OpenCC, rjieba, lexicons) is heavy and most users of this package never cut.
    from qingfeng.text.enrichment import default_enricher

    return WordSplitter(default_enricher().segmenter)


def join_fragment(fragment: str) -> str:
    """A highlighted fragment of ``words`` with the spaces the splitter inserted between Chinese removed.

    ``<em>受贿</em> 局长 被 查`` becomes ``<em>受贿</em>局长被查``; spaces between Latin words stay.
    """
    previous = None
    while previous != fragment:
        previous = fragment
        fragment = _INSERTED_SPACE.sub(r"\1\2", fragment)
    return fragment
