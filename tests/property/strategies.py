"""Strategies that mix valid and hostile values: what a broken or malicious source sends.

Hostile means the values issue #13 found and their relatives: superscript digits (``"²"`` passes ``str.isdigit``),
integers past int64 or past Python's digit limit, lone UTF-16 surrogates, NaN and infinities, times that do not
exist (``今天 24:00``) or overflow (``999999999天前``), URLs that do not parse (``http://[x``), empty values, wrong
types and deep nesting.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Final

from hypothesis import strategies as st

__all__ = [
    "DELETE",
    "HOSTILE_INTS",
    "HOSTILE_STRINGS",
    "JSON_POOL",
    "NOW",
    "any_text",
    "field_values",
    "hostile_text",
    "json_documents",
    "json_values",
    "mutate",
    "mutations",
    "time_texts",
    "xml_text",
]

# Every code point, lone surrogates included (st.text leaves them out by default).
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)

HOSTILE_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "²",
    "①",
    "٣",
    "\ud800",
    "a\udfffb",
    "\x00",
    "\u202e",
    "\ufeff",
    "今天 24:00",
    "昨天 23:60",
    "前天 99:99",
    "999999999天前",
    "999999999999天前",
    "99999999999小时前",
    "刚刚",
    "3分钟前",
    "http://[x",
    "http://h:99999/",
    "http://[::1",
    "javascript:alert(1)",
    "//evil.example/x",
    "9" * 400,
    "9" * 5000,
    "-1",
    "1e999",
    "NaN",
    "-Infinity",
    "0x7f",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "２０２４年５月１日",
    "2024-13-45 25:61",
    "0000-00-00 00:00:00",
    "10000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "Fri, 31 Dec 9999 23:59:59 -1200",
    "Mon, 01 Jan 0001 00:00:00 +1400",
    "Tue May 31 17:46:55 +0800 2011",
    "Tue May 31 17:46:55 +9999 2011",
    "9999999999",
    "99999999999999",
    "253402300800",
    "253402300800000",
    "<div>" * 30,
    "&nbsp;&#0;&#xD800;&#99999999;",
    "<![CDATA[x]]>",
    "]]>",
)
HOSTILE_INTS: tuple[int, ...] = (
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**40,
    10**41,
    10**400,
)

hostile_text = st.one_of(st.sampled_from(HOSTILE_STRINGS), any_text)

_OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_DATETIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_OFFSETS)


def _weibo(value: datetime) -> str:
    return value.strftime("%a %b %d %H:%M:%S %z %Y")


time_texts: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    _DATETIMES.map(lambda d: d.isoformat()),
    _DATETIMES.map(format_datetime),
    _DATETIMES.map(_weibo),
    st.builds(lambda n, unit: f"{n}{unit}前", st.integers(), st.sampled_from(["秒", "分钟", "小时", "天"])),
    st.builds(
        lambda day, h, m: f"{day} {h}:{m:02d}",
        st.sampled_from(["今天", "昨天", "前天"]),
        st.integers(-5, 120),
        st.integers(0, 120),
    ),
    st.builds(
        lambda y, mo, d, h, mi, sep: f"{y}{sep[0]}{mo}{sep[1]}{d}{sep[2]} {h}:{mi:02d}",
        st.integers(0, 99999),
        st.integers(0, 99),
        st.integers(0, 99),
        st.integers(0, 99),
        st.integers(0, 99),
        st.sampled_from([("-", "-", ""), ("年", "月", "日"), ("/", "/", ""), (".", ".", "")]),
    ),
    st.integers().map(str),
    any_text,
)


def _nested(depth: int) -> Any:
    value: Any = "底"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Whole values of every JSON type, valid-looking and hostile, drawn by index (one cheap draw each; Hypothesis's
# recursive strategies cost tens of draws per value, and the budget is 5,000 examples per parser).
JSON_POOL: tuple[Any, ...] = (
    *HOSTILE_STRINGS,
    *HOSTILE_INTS,
    None,
    True,
    False,
    0.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    [],
    {},
    [None],
    ["\ud800", 2**64, "²"],
    {"": None},
    {"id": 2**63, "idstr": "²"},
    {"\ud800": "\udfff"},
    [[[[]]]],
    _nested(60),
    _nested(900),
    [{"url": "http://[x"}, {"url": 5}, "x"],
    {"statuses": "x"},
    {"error": "invalid token"},
    {"error": ["\ud800"]},
)
DELETE: Final = object()  # a mutation that removes the field

json_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(JSON_POOL),
    any_text,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.sampled_from(JSON_POOL), max_size=3),
)
# A field set to something else or removed.
field_values: st.SearchStrategy[Any] = st.one_of(json_values, st.just(DELETE))


def mutations(paths: Sequence[str], values: st.SearchStrategy[Any] = field_values) -> st.SearchStrategy[Any]:
    """Up to four changes (dotted path, new value or ``DELETE``) to apply to a valid document with ``mutate``."""
    return st.lists(st.tuples(st.sampled_from(paths), values), max_size=4)


def mutate(document: Mapping[str, Any], changes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of ``document`` with ``changes`` applied (a path through a non-object makes it an object)."""
    out = copy.deepcopy(dict(document))
    for path, value in changes:
        *parents, last = path.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def _dumps(value: Any) -> str:
    # ensure_ascii writes lone surrogates as "\ud800" escapes, which is how they arrive over the wire.
    return json.dumps(value, allow_nan=True)


json_documents: st.SearchStrategy[str] = st.one_of(
    json_values.map(_dumps),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 200_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.builds(lambda digits: "[" + digits + "]", st.text(alphabet="0123456789-", min_size=1, max_size=6000)),
    any_text,
)


def _xml_legal(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry at all (they would only make the document malformed)."""
    return "".join(
        c for c in text if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c > "\uffff"
    )


xml_text = hostile_text.map(_xml_legal)

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
