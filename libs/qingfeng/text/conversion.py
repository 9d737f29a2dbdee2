"""Script and width normalisation of Chinese text, and the canonical form used for content hashing.

Three layers, each cheap and idempotent:

- ``normalize_width``: full-width ASCII letters/digits/symbols to half-width, the ideographic space to a space,
  CJK compatibility ideographs and Kangxi radicals to the unified ideographs (the NFKC mappings that are safe
  for Chinese prose). Chinese prose punctuation (，。！？：；（）) is kept as written: NFKC would turn it into
  ASCII and change the text shown to analysts.
- ``to_simplified``: traditional to simplified with OpenCC ``t2s`` (phrase-aware, e.g. 貪污受賄 → 贪污受贿).
- ``normalize_for_hash``: the canonical content of a post for exact-duplicate detection: lower case, no URLs,
  no @mentions or ``//@user:`` repost chains, no 转发微博 boilerplate, no [表情] emoticons, no whitespace and
  no punctuation at all.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import opencc

from qingfeng.text import _t2s_witness

__all__ = [
    "content_hash",
    "normalize_for_hash",
    "normalize_width",
    "prepare",
    "strip_noise",
    "to_simplified",
]

# Full-width forms that stay as written: they are ordinary Chinese punctuation, not "wide ASCII".
_KEEP_FULL_WIDTH = frozenset("！（），：；？～")


def _width_table() -> dict[int, str]:
    table: dict[int, str] = {}
    ranges = (
        range(0xFF01, 0xFF5F),  # full-width ASCII variants
        range(0xF900, 0xFB00),  # CJK compatibility ideographs
        range(0x2F00, 0x2FD6),  # Kangxi radicals, used to dodge keyword filters (⾦ for 金)
    )
    for block in ranges:
        for cp in block:
            ch = chr(cp)
            if ch in _KEEP_FULL_WIDTH:
                continue
            mapped = unicodedata.normalize("NFKC", ch)
            if mapped != ch:
                table[cp] = mapped
    table[0x3000] = " "  # ideographic space
    return table


_WIDTH_TABLE = _width_table()
# Finding "nothing to do" with one regex search is much cheaper than str.translate over every post, and so is
# translating only the runs that need it: str.translate of a non-ASCII text looks every character up in the dict
# (~100 ns each), while a Chinese article has a few full-width letters or digits in thousands of characters.
_WIDTH_CLASS = "[" + "".join(re.escape(chr(cp)) for cp in sorted(_WIDTH_TABLE)) + "]"
_NEEDS_WIDTH = re.compile(_WIDTH_CLASS)
# X X* rather than X+: a pattern that starts with a character class lets re skip to candidates (X+ does not)
_WIDTH_RUN = re.compile(_WIDTH_CLASS + _WIDTH_CLASS + "*")


_TRANSLATE_RUNS_FROM = 256  # characters; below, one str.translate beats a Python call per run


def _translate_run(match: re.Match[str]) -> str:
    return match.group().translate(_WIDTH_TABLE)


def normalize_width(text: str) -> str:
    """Map full-width ASCII, the ideographic space and compatibility ideographs to their normal forms."""
    if text.isascii() or _NEEDS_WIDTH.search(text) is None:
        return text
    if len(text) < _TRANSLATE_RUNS_FROM:
        return text.translate(_WIDTH_TABLE)
    return _WIDTH_RUN.sub(_translate_run, text)


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    # Loading the OpenCC dictionaries takes milliseconds: do it once per process, on first use.
    return opencc.OpenCC("t2s")


# A text with none of the characters that some t2s entry changes comes out of OpenCC as it went in (see
# _t2s_witness.py); one regex search (~3 ns a character) finds that for most mainland text, OpenCC costs ~25.
# Lone surrogates are in the class too: OpenCC rejects them (UnicodeEncodeError), and that stays so. Witnesses
# beyond the BMP (rare ideographs) are covered by one range: re checks non-BMP members of a class one by one.
_CHANGES_IN_T2S = re.compile(
    "["
    + "".join(re.escape(ch) for ch in _t2s_witness.WITNESS if ord(ch) < 0x10000)
    + "\ud800-\udfff\U00020000-\U0003ffff]"
)


def to_simplified(text: str) -> str:
    """Convert traditional Chinese to simplified (OpenCC ``t2s``); ASCII text is returned unchanged."""
    if not text or text.isascii() or _CHANGES_IN_T2S.search(text) is None:
        return text
    converted: str = _t2s().convert(text)
    return converted


def prepare(text: str) -> str:
    """The text every tagger sees: width-normalised, then simplified."""
    return to_simplified(normalize_width(text))


# One alternation, one pass. Order matters: URLs and repost chains before the generic punctuation class, so
# "//@user:" is removed with its name rather than leaving the name behind.
_NOISE = re.compile(
    r"(?:https?://|www\.)[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*"  # URLs (ASCII only: Chinese right after stays)
    r"|//@[\w\-]{1,30}[:：]?"  # repost chain //@user:
    r"|@[\w\-]{1,30}"  # @mention
    r"|\A回复"  # reply prefix 回复@user:
    r"|转发微博"  # weibo's default repost text
    r"|\[[^\[\]\s]{1,8}\]"  # [表情] emoticons
)
_NON_WORD = re.compile(r"[\W_]+")
_URL_TAIL = r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*"
# The same alternatives as _NOISE (which stays as the reference), each starting with a literal character and the
# leading 回复 cut before the search: CPython's re then jumps to the positions holding one of h w / @ 转 [ instead of
# trying every alternative at every position, 2-4x faster on long texts. Two alternatives never start with the
# same character, so their order no longer matters.
_NOISE_SCAN = re.compile(
    r"https?://"
    + _URL_TAIL
    + r"|www\."
    + _URL_TAIL
    + r"|//@[\w\-]{1,30}[:：]?"
    + r"|@[\w\-]{1,30}"
    + r"|转发微博"
    + r"|\[[^\[\]\s]{1,8}\]"
)
_REPLY = "回复"


def _sub_noise(text: str) -> str:
    """``_NOISE.sub("", text)``: no alternative but 回复 can match at 0 or 1, where 回复 sits when it leads."""
    if text.startswith(_REPLY):
        text = text[len(_REPLY) :]
    return _NOISE_SCAN.sub("", text)


# The collector strips the noise of a text for its keywords, then normalises the same text for hashing, which strips
# the noise of its lower-case form: when that is the same string (no upper case), the first answer is reused. The
# answers for the last _STRIPPED_KEPT texts are kept (enrichment in batches strips a whole batch before the dedupe
# normalises it), emptied whole when full; each entry is written whole, so a reader never sees an output that is not
# its input's.
_STRIPPED_KEPT = 64
_stripped: dict[str, str] = {}


def strip_noise(text: str) -> str:
    """Remove URLs, @mentions, repost chains, 转发微博 and emoticons, keeping spacing and punctuation."""
    stripped = _sub_noise(text)
    if len(_stripped) >= _STRIPPED_KEPT:
        _stripped.clear()
    _stripped[text] = stripped
    return stripped


def normalize_for_hash(text: str, *, simplified: bool = False) -> str:
    """The canonical content of ``text``: what two copies of one post have in common.

    Pass ``simplified=True`` when ``text`` is already the output of :func:`prepare`, to skip the conversion.
    """
    if not simplified:
        text = prepare(text)
    lowered = text.lower()
    stripped = _stripped.get(lowered)
    if stripped is None:
        stripped = _sub_noise(lowered)
    return _drop_non_word(stripped)


_BMP = 1 << 16
_VECTOR_FROM = 512  # characters; below, one regex substitution is cheaper than numpy's fixed cost (~8 µs)


@lru_cache(maxsize=1)
def _word_bmp() -> npt.NDArray[np.bool_]:
    # ``\w`` in a str pattern is str.isalnum() or "_"; "_" is dropped too ([\W_]), so keep exactly isalnum (~5 ms)
    return np.array([chr(cp).isalnum() for cp in range(_BMP)], dtype=np.bool_)


def _drop_non_word(text: str) -> str:
    """``_NON_WORD.sub("", text)``; a long text of BMP characters is filtered by a table lookup in numpy instead."""
    if len(text) >= _VECTOR_FROM:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if int(codes.max()) < _BMP:
            kept: bytes = codes[_word_bmp()[codes]].tobytes()
            return kept.decode("utf-32-le")
    return _NON_WORD.sub("", text)


def content_hash(normalized: str) -> str:
    """A stable 128-bit hex digest of a normalised text (stable across processes, unlike ``hash``)."""
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=16).hexdigest()
