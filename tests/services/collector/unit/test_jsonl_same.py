"""The JSONL parser gives the same items as before its speed-up, on the whole shared file.

``_DIGEST`` is the SHA-256 of every item the former parser (at 8d57ff9: ``json.loads``, ``dig`` and ``set_time``)
made of ``weibo_posts.jsonl``, computed with that code before the change (each Post serialised deterministically,
each Rejected by its reason, message, payload and origin). ``loads`` is also compared line by line with a frozen
copy of the former ``loads`` (below), so a difference names its line rather than only changing the digest.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.sources._json import loads, scrub_surrogates
from services.collector.sources.jsonl import iter_jsonl

_SOURCE = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
_COLLECTED_AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
# The former parser's items on the shared data (57,576 lines), see the module docstring.
_DIGEST = "eb26bfe274359a87d8c5dc6960ab238752124d3badbc9515d8c20b77f5a83092"
_LINES = 57_576

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _old_bounded_int(digits: str) -> int | float:
    if len(digits.lstrip("-")) > 40:
        return -math.inf if digits.startswith("-") else math.inf
    return int(digits)


def old_loads(text: str | bytes) -> Any:
    """The former ``_json.loads``, frozen."""
    try:
        value = json.loads(text, parse_int=_old_bounded_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    raw = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    if _SURROGATE_ESCAPE.search(raw) or _SURROGATE.search(raw):
        value = scrub_surrogates(value)
    return value


def items_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    n = 0
    for item in iter_jsonl(path, _SOURCE, collected_at=_COLLECTED_AT):
        n += 1
        if isinstance(item, post_pb2.Post):
            digest.update(b"P" + item.SerializeToString(deterministic=True) + b"\0")
        else:
            fields = (item.reason, item.message, item.origin, item.source_id)
            digest.update(b"R" + repr(fields).encode("utf-8", "surrogatepass") + item.payload + b"\0")
    return digest.hexdigest(), n


@pytest.fixture(scope="module")
def posts_file(shared_data: Path) -> Path:
    return shared_data / "weibo_posts.jsonl"


def test_the_whole_shared_file_parses_to_the_same_items(posts_file: Path) -> None:
    digest, lines = items_digest(posts_file)
    assert lines == _LINES
    assert digest == _DIGEST


def test_loads_gives_the_same_objects_on_every_shared_line(posts_file: Path) -> None:
    with posts_file.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip().decode("utf-8")
            assert loads(text) == old_loads(text), number
            assert loads(line.strip()) == old_loads(line.strip()), number


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": NaN}',
        '{"a": Infinity, "b": -Infinity}',
        '{"a": 1e400}',
        '{"a": 18446744073709551615}',
        '{"a": 18446744073709551616}',
        '{"a": [18446744073709551616]}',
        '{"a": -9223372036854775809, "b": 1.5}',
        '{"a": 1234567890123456789012345678901234567890123}',
        '{"a": "\\ud800"}',
        '{"a": "\ud800"}',
        '{"\\udc00": "\\ud83d\\ude00"}',
        '\ufeff{"a": 1}',
        '{"a": "x\ty"}',
        '{"a": 0.1, "b": -0.0, "c": 2.5e-324, "d": 1E2}',
        "[" * 990 + "]" * 990,
        "[" * 1100 + "]" * 1100,
        '{"a": 1}x',
        '{"a": 01}',
        "",
        "null",
        '"text"',
    ],
)
def test_loads_reads_edge_cases_as_before(text: str) -> None:
    try:
        expected: Any = ("ok", repr(old_loads(text)))
    except ValueError as err:
        expected = ("error", str(err))
    try:
        got: Any = ("ok", repr(loads(text)))
    except ValueError as err:
        got = ("error", str(err))
    assert got == expected
