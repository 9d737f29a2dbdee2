"""The deduper's memory stops growing at its bounds, and a post delivered again needs no per-post memory to be
recognised as itself (the answers memo is small; see services/collector/core/dedupe.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.collector.core.dedupe import DedupeConfig, DedupeKind, Deduper

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TEXT_A = "【某县国土局长被举报】网友实名举报某县国土局长收受开发商巨额贿赂，县纪委表示已成立调查组核实相关情况。"
TEXT_B = "【高速公路收费站】春节假期高速公路免费通行，收费站工作人员提醒司机注意安全，错峰出行，避免拥堵。"


def _text(i: int) -> str:
    """A text of its own per i (far apart in SimHash: different numbers all through it)."""
    return f"第{i}号通报：编号{i * 7919}的案件，涉案金额{i * 104729}元，责任人{i % 97}号已于{i % 28}日被立案审查。"


def test_answers_and_originals_stop_at_their_bounds() -> None:
    deduper = Deduper(DedupeConfig(max_entries=300, max_remembered=100))
    sizes = []
    for i in range(2_000):
        deduper.check(f"p{i}", _text(i), T0 + timedelta(seconds=i))
        if i % 500 == 499:
            sizes.append((len(deduper._answers), len(deduper), len(deduper._by_hash)))
    assert sizes == [(100, 300, 300)] * 4


def test_the_default_memo_is_small() -> None:
    # 500,000 answers (~150 MB) was most of the collector's growth in a soak; 10,000 is ~3 MB.
    assert DedupeConfig().max_remembered == 10_000


def test_redelivered_original_is_new_again_after_its_answer_was_forgotten() -> None:
    deduper = Deduper(DedupeConfig(max_remembered=1))
    first = deduper.check("orig", TEXT_A, T0)
    copy = deduper.check("copy", TEXT_A, T0 + timedelta(seconds=1))
    deduper.check("other", TEXT_B, T0 + timedelta(seconds=2))  # pushes both answers out of the memo
    assert deduper.check("orig", TEXT_A, T0 + timedelta(seconds=3)) == first  # NEW, not EXACT of itself
    again = deduper.check("copy", TEXT_A, T0 + timedelta(seconds=4))
    assert (again.kind, again.duplicate_of) == (copy.kind, copy.duplicate_of) == (DedupeKind.EXACT, "orig")
    assert len(deduper) == 2  # orig and other: nothing indexed twice


def test_redelivered_post_with_a_changed_text_replaces_its_entry() -> None:
    deduper = Deduper(DedupeConfig(max_remembered=1))
    deduper.check("p1", TEXT_A, T0)
    deduper.check("filler", "", T0 + timedelta(seconds=1))  # forgets p1's answer
    edited = deduper.check("p1", TEXT_B, T0 + timedelta(seconds=2))
    assert edited.kind is DedupeKind.NEW and edited.duplicate_of is None
    assert len(deduper) == 1
    assert deduper.check("p2", TEXT_A, T0 + timedelta(seconds=3)).kind is DedupeKind.NEW  # the old text is gone
    copy = deduper.check("p3", TEXT_B, T0 + timedelta(seconds=4))
    assert (copy.kind, copy.duplicate_of) == (DedupeKind.EXACT, "p1")
