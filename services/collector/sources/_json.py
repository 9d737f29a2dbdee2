"""Reading untrusted JSON: typed accessors that say what was wrong instead of raising ``KeyError``/``TypeError``.

Hostile input this module absorbs (each costs at most its own item): lone UTF-16 surrogates (``"\\ud800"``, which
protobuf cannot store) become U+FFFD; nesting too deep for the parser is a ``ValueError``; integer literals of more
than 40 digits are read as infinity (refused by the accessors); counts must be ASCII digits within int64 (``"²"``
passes ``str.isdigit`` but not ``int``; 2**63 does not fit ``Post.likes``).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = [
    "INT64_MAX",
    "ShapeError",
    "count",
    "dead_letter_json",
    "dig",
    "ident",
    "loads",
    "mapping",
    "opt_str",
    "scrub_surrogates",
]

INT64_MAX: Final = 2**63 - 1
# A JSON escape of a UTF-16 surrogate; a valid pair is joined by the parser, so what survives it is a lone half.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")
# An integer literal that may not fit 64 bits (orjson reads those as floats): 19 digits in a row, anywhere.
_LONG_DIGITS = re.compile(r"[0-9]{19}")
# json's C scanner fails at a depth of the recursion limit (1,000) less the caller's stack depth; a text with fewer
# brackets than this nests too shallow for that to happen in any real stack, so orjson reads it the same. Texts
# shorter than twice this cannot hold that many brackets (a JSONL post has a handful; an API page may go the slow way).
_DEEP_BRACKETS: Final = 100
_DEEP_CHARS: Final = 2 * _DEEP_BRACKETS
_EXACT_TYPES: Final = frozenset({str, int, bool, type(None)})


class ShapeError(ValueError):
    """The JSON parsed but is not the shape this source promises (a missing or mistyped field)."""


def loads(text: str | bytes) -> Any:
    """``json.loads``; raises ``ValueError`` (``json.JSONDecodeError``) with line and column for bad JSON, or for
    nesting deeper than the parser's recursion limit. Lone surrogates in strings come back as U+FFFD."""
    if isinstance(text, str) and (len(text) < _DEEP_CHARS or not _deep(text)):
        # orjson (several times faster) where it gives exactly what json.loads gives: it refuses everything json
        # reads differently (NaN, Infinity, overflowing floats, lone surrogates, a BOM, nesting past 1,024), and those
        # texts take the json path below, with its values and error messages. Integers past 64 bits it reads as
        # floats: a result with no float in it had none (a flat object of strings, ints, bools and nulls, as JSONL
        # lines are), otherwise a text with a run of 19+ digits anywhere goes the json way. So does a text that may
        # nest deeper than json's recursion limit, which orjson would accept.
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        else:
            if _exact(value) or not _LONG_DIGITS.search(text):
                return value
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    raw = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    if _SURROGATE_ESCAPE.search(raw) or _SURROGATE.search(raw):
        value = scrub_surrogates(value)
    return value


def _exact(value: Any) -> bool:
    """Whether ``value`` is an object of strings, integers, booleans and nulls only (no float, nothing nested)."""
    return type(value) is dict and _EXACT_TYPES.issuperset(map(type, value.values()))  # no generator: C loops


def _deep(text: str) -> bool:
    """Whether ``text`` has enough brackets to nest near json's recursion limit (a cheap upper bound on depth)."""
    return text.count("[") + text.count("{") >= _DEEP_BRACKETS


def _bounded_int(digits: str) -> int | float:
    """An integer literal; one too long for any count or id becomes infinity, which every accessor refuses for its
    own item, instead of Python's digit limit refusing the whole document (``int`` of 4,301+ digits)."""
    if len(digits.lstrip("-")) > 40:
        return -math.inf if digits.startswith("-") else math.inf
    return int(digits)


def scrub_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD; iterative, so depth is free."""

    def fix(item: Any) -> Any:
        if isinstance(item, str):
            return _SURROGATE.sub("\ufffd", item)
        if isinstance(item, list):
            copy: list[Any] = list(item)
            pending.append(copy)
            return copy
        if isinstance(item, dict):
            copied: dict[Any, Any] = dict(item)
            pending.append(copied)
            return copied
        return item

    pending: list[Any] = []
    root = fix(value)
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            node[:] = [fix(v) for v in node]
        else:
            items = [(fix(k), fix(v)) for k, v in node.items()]
            node.clear()
            node.update(items)
    return root


def dead_letter_json(value: object) -> str:
    """``value`` as JSON text for a dead letter's payload; nesting too deep to encode gives its ``repr`` instead (the
    parser accepts ~1,000 levels; the encoder ran out of stack in the handler that was rejecting the item)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        return reprlib.repr(value)


def mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{what} is {type(value).__name__}, expected an object")
    return value


def dig(obj: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path (``user.screen_name``), None when any step is missing."""
    if type(obj) is dict and "." not in dotted:  # the common case, without the Mapping check (an ABC: slow)
        return obj.get(dotted)
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def ident(value: object, what: str) -> str:
    """A required id: a non-empty string or an integer (ids come as both), as a string."""
    if type(value) is str and value:  # the common case first
        return value
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ShapeError(f"{what} is missing or not a string or integer")
    return str(value)


def opt_str(value: object, what: str) -> str:
    """An optional string field: "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ShapeError(f"{what} is {type(value).__name__}, expected a string")
    return value


def count(value: object, what: str) -> int:
    """An optional non-negative count: 0 when absent; numeric strings are accepted (some APIs quote them)."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value <= INT64_MAX:  # the common case first (not bool: its type is bool)
        return value
    if isinstance(value, str) and _ASCII_DIGITS.fullmatch(value.strip()):
        digits = value.strip().lstrip("0") or "0"
        if len(digits) > 19:  # past int64 for sure; int() of a huge string costs time and hits Python's digit limit
            raise ShapeError(f"{what} is {digits[:40]!r}…, more than a 64-bit count holds")
        value = int(digits)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:60] + "…"
        raise ShapeError(f"{what} is {shown}, expected a non-negative integer")
    if value > INT64_MAX:
        raise ShapeError(f"{what} is {str(value)[:40]}, more than a 64-bit count holds")
    return value
