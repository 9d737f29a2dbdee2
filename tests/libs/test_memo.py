"""qingfeng.memo.Memo: a bounded memo of a pure function."""

from __future__ import annotations

import pytest
from qingfeng.memo import Memo


def test_a_key_is_made_once_and_then_read() -> None:
    calls: list[str] = []

    def make(key: str) -> int:
        calls.append(key)
        return len(key)

    memo = Memo(make, limit=10)
    assert [memo["ab"], memo["abc"], memo["ab"]] == [2, 3, 2]
    assert calls == ["ab", "abc"]


def test_a_full_memo_is_emptied_whole_before_the_next_key() -> None:
    memo = Memo(str, limit=3)
    for n in range(3):
        memo[n]
    assert len(memo) == 3
    assert memo[99] == "99"
    assert dict(memo) == {99: "99"}, "bounded: the old keys went, the new one stays"
    assert memo[0] == "0" and len(memo) == 2


def test_a_memo_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Memo(str, limit=0)
