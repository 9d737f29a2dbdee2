"""post_id: the whitespace test is a regex scan now; it must accept and refuse exactly what the former one did."""

from __future__ import annotations

import hashlib

import pytest
from qingfeng.v1 import common_pb2

from services.collector.sources.base import _WHITESPACE, post_id

_KIND = common_pb2.SOURCE_KIND_JSONL_IMPORT


def test_whitespace_pattern_is_str_isspace_on_every_code_point() -> None:
    differ = [hex(cp) for cp in range(0x110000) if chr(cp).isspace() != (_WHITESPACE.fullmatch(chr(cp)) is not None)]
    assert differ == []


@pytest.mark.parametrize(
    "native",
    ["4912354398765432", "abc-DEF_9", "with space", "tab\there", "nbsp\u00a0id", "ideographic\u3000space", "x\x1cy"],
)
def test_ids_are_those_of_the_character_scan(native: str) -> None:
    has_space = any(c.isspace() for c in native)  # the former test, character by character
    expected = f"jsonl:src:h{hashlib.sha1(native.encode('utf-8')).hexdigest()}" if has_space else f"jsonl:src:{native}"
    assert post_id(_KIND, "src", native) == expected
