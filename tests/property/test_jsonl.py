"""JSONL import lines: any line (text or bytes) becomes a post or a dead letter saying why, never an exception; a
file with one bad line among 20 yields the 19 good posts."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.sources.base import post_id
from services.collector.sources.jsonl import DEFAULT_FIELD_MAP, MAX_LINE_BYTES, iter_jsonl, parse_jsonl_line
from tests.property._posts import check_items, posts_of
from tests.property._support import fewer, run
from tests.property.strategies import NOW, any_text, field_values, json_documents, mutate, mutations, time_texts

SOURCE = common_pb2.SOURCE_KIND_JSONL_IMPORT
IMPORT = source_pb2.Source(id="imp", kind=SOURCE)


def good_line(i: int) -> dict[str, Any]:
    return {
        "id": f"good-{i}",
        "source": "weibo",
        "text": f"第{i}条",
        "created_at": "2024-05-01 12:30:00",
        "author": f"user-{i}",
        "author_name": "网友",
        "followers": 10,
        "reposts": 1,
        "comments": 2,
        "likes": "3",
        "views": 4,
        "parent_id": None,
        "media_urls": ["https://img.example/1.jpg"],
    }


PATHS = (*DEFAULT_FIELD_MAP.values(), "author.id", "author.name", "author.followers", "author.is_media")
_values = st.one_of(field_values, time_texts)
lines = st.one_of(
    st.builds(lambda i, changes: json.dumps(mutate(good_line(i), changes), allow_nan=True), st.integers(0, 50),
              mutations(PATHS, _values)),
    json_documents,
)  # fmt: skip
raw_lines = st.one_of(lines, lines.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=64))
field_maps = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from([*DEFAULT_FIELD_MAP, "nonsense"]), st.one_of(any_text, st.just("a.b.c")), max_size=3
    ),
)


def _parse(line: str | bytes, field_map: dict[str, str] | None) -> object:
    return parse_jsonl_line(line, IMPORT, collected_at=NOW, origin="posts.jsonl:1", field_map=field_map)


@given(raw_lines, field_maps)
@example(json.dumps({**good_line(1), "likes": "²"}), None)
@example(json.dumps({**good_line(1), "views": 2**63}), None)
@example(json.dumps({**good_line(1), "text": "\ud800"}), None)
@example('{"id": "x", "text": "\ud800", "created_at": "2024-05-01"}', None)
@example(json.dumps({**good_line(1), "created_at": "999999999天前"}), None)
@example(json.dumps({**good_line(1), "created_at": 10**400}), None)
@example(b"\xff\xfe{}", None)
@example(b'{"id": "' + b"x" * (MAX_LINE_BYTES + 1) + b'"}', None)
@example('{"id": ' + "9" * 5000 + "}", None)
def test_any_line_is_a_post_or_a_dead_letter(line: str | bytes, field_map: dict[str, str] | None) -> None:
    item, error = run("jsonl.parse_jsonl_line", _parse, line, field_map, errors=(ValueError,))
    if error is not None:  # documented: only a field map naming fields a Post does not have
        assert field_map is not None and "nonsense" in field_map, repr(error)
        assert "unknown Post fields" in str(error)
        return
    check_items([item])


# A bad line made from a good one keeps an id none of the 20 has.
bad_lines = st.one_of(
    st.builds(lambda changes: json.dumps(mutate(good_line(99), changes), allow_nan=True), mutations(PATHS, _values)),
    json_documents,
    st.binary(max_size=64),
)


@fewer(1_000)
@given(st.integers(0, 19), bad_lines)
@example(4, json.dumps({**good_line(99), "likes": "²"}))
@example(0, b"\xc3\x28")
def test_one_bad_line_among_20_costs_only_itself(bad_at: int, bad: str | bytes) -> None:
    lines: list[bytes] = [json.dumps(good_line(i)).encode() for i in range(20)]
    lines[bad_at] = bad if isinstance(bad, bytes) else bad.encode("utf-8", "surrogatepass")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "posts.jsonl")
        path.write_bytes(b"\n".join(lines) + b"\n")
        items, _ = run("jsonl.iter_jsonl", lambda: list(iter_jsonl(path, IMPORT, collected_at=NOW)))
    posts = posts_of(check_items(items))
    for i in range(20):
        if i != bad_at:
            assert posts[post_id(SOURCE, "imp", f"good-{i}")].text == f"第{i}条"
