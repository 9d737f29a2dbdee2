"""Red (特别严重) fires, with its reasons, on a cascade into which posts announcing a gathering are injected, and not on
the same cascade without them (bench/_eval_red.py, through the real pipeline and the bundled policy)."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from _eval_red import inject, red_demo  # noqa: E402

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file  # noqa: E402

CST = timezone(timedelta(hours=8))


def cascade(eid: str, start: datetime, followers: int, reposts: int) -> list[dict]:
    text = "网传某地化工厂排污致河流变色，村民称多次反映无果，环保部门尚未回应"
    rows = [{"id": eid, "text": text, "created_at": start.isoformat(),
             "source": "weibo", "author": f"big-{eid}", "followers": followers, "reposts": reposts, "comments": 900,
             "likes": 0, "parent_id": None, "event_id": eid, "label": "rumor"}]  # fmt: skip
    for i in range(60):
        at = start + timedelta(seconds=50 * i + 30)
        rows.append({"id": f"{eid}r{i:02d}", "text": "", "created_at": at.isoformat(),
                     "source": "weibo", "author": f"{eid}u{i}", "followers": 300, "reposts": 0, "comments": 0,
                     "likes": 0, "parent_id": eid, "event_id": eid, "label": None})  # fmt: skip
    return rows


def test_red_needs_injected_offline_action_and_gives_its_reasons():
    t0 = datetime(2013, 3, 1, 9, 0, tzinfo=CST)
    rows = cascade("100", t0, 6_000_000, 8000) + cascade("200", t0 + timedelta(hours=3), 2000, 40)
    rows.sort(key=lambda r: (r["created_at"], r["id"]))
    policy = load_policy_file(DEFAULT_POLICY)
    cases = {c.event_id: c for c in red_demo(rows, {"100": 5000, "200": 100}, policy, top=2, count=6)}
    big, small = cases["100"], cases["200"]
    assert big.level_plain != "red" and big.level_injected == "red"
    reasons = " ".join(big.red_reasons)
    assert "线下行动风险" in reasons and "意见领袖粉丝覆盖" in reasons and "转发量" in reasons
    # Offline talk without the attention red also requires stays below red.
    assert small.level_plain != "red" and small.level_injected != "red"


def test_inject_adds_reposts_of_each_source_in_time_order():
    t0 = datetime(2013, 3, 1, 9, 0, tzinfo=CST)
    rows = cascade("100", t0, 10, 0)
    out = inject(rows, ["100"], count=4, after_min=10, every_min=5)
    added = [r for r in out if r["id"].startswith("100x")]
    assert len(out) == len(rows) + 4 and all(r["parent_id"] == "100" for r in added)
    times = [datetime.fromisoformat(r["created_at"]) for r in out]
    assert times == sorted(times)
    assert [datetime.fromisoformat(r["created_at"]) - t0 for r in added] == [
        timedelta(minutes=m) for m in (10, 15, 20, 25)
    ]
