"""A checkpoint's encoding: the same state back, and a transient memory peak bounded by the size of what it writes.

Every checkpoint encodes the whole clustering horizon; its peak is a high-water mark of the grader's resident memory
(see ``services/grader/state_codec.py`` ``encode_state``).
"""

from __future__ import annotations

import gc
import json
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson

from services.grader.core import Grader, Policy
from services.grader.state_codec import decode_state, encode_state
from tests.services.grader.unit.test_state import T0, story


def _grader(policy: Policy) -> Grader:
    g = Grader(policy)
    for n in range(40):  # 40 stories with Chinese titles, overlapping in time
        start = T0 + timedelta(minutes=3 * n)
        g.process_batch([p for p in story(150, start=start, every_s=2.0, prefix=f"s{n}-")])
    return g


def test_the_state_comes_back_as_a_json_round_trip(four_level: Policy) -> None:
    g = _grader(four_level)
    data = g.snapshot()
    assert decode_state(encode_state(data)) == json.loads(json.dumps(data))
    restored = Grader.restore(decode_state(encode_state(data)), four_level)
    assert restored.snapshot() == json.loads(json.dumps(data))


def test_a_state_written_by_the_standard_encoder_still_reads() -> None:
    data = {"format": "x", "clock": float("inf"), "title": "某局长违规", "n": [1, 2.5, None]}
    blob = zlib.compress(json.dumps(data, ensure_ascii=False).encode("utf-8"), 1)  # as checkpoints were written
    assert decode_state(blob) == data


def test_states_are_written_as_zstd_and_the_zlib_states_of_before_still_read(four_level: Policy) -> None:
    data = _grader(four_level).snapshot()
    blob = encode_state(data)
    assert blob[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    before = zlib.compress(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), 1)  # checkpoints up to 2026-12-01
    assert decode_state(before) == decode_state(blob) == json.loads(json.dumps(data))


def _peak(encode: Callable[[dict[str, Any]], bytes], g: Grader) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        encode(g.snapshot())
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _json_encoding(data: dict[str, Any]) -> bytes:
    """How checkpoints were encoded before (json.dumps to a str, then UTF-8)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, check_circular=False)
    return zlib.compress(text.encode("utf-8"), 1)


def test_the_encoding_peak_is_well_under_the_standard_encoders(four_level: Policy) -> None:
    g = _grader(four_level)
    now, before = _peak(encode_state, g), _peak(_json_encoding, g)
    # The snapshot tree, the UTF-8 text and the blob; json.dumps also held its chunk list and a str of the whole text
    # (two bytes a character with Chinese in it). At 150,000 posts: +121 instead of +208 MiB.
    assert now < 0.75 * before, (now, before)
