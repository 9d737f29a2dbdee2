"""The evaluation's honesty checks: no ground truth leaks into predictions, the concurrent replay keeps every
event's own timing, the trivial baselines behave as defined, text-bearing posts are what the issue says."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
CST = timezone(timedelta(hours=8))
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _eval_replay import CONCURRENT_START, concurrent_rows, own_words, shuffle_truth, text_bearing  # noqa: E402
from _pipeline import VARIANTS, collect, default_data_dir, read_rows  # noqa: E402

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file  # noqa: E402

STORIES = (
    "某市住建局局长被实名举报受贿数百万元，纪委已介入调查，当地官方回应称正在核实",
    "网传某县中学食堂发生集体食物中毒，学校称正在核实情况，家长聚集校门口讨说法",
    "某地高速公路发生多车追尾事故，交警提醒绕行注意安全，事故原因仍在调查之中",
    "某省卫视主持人疑似酒驾被查，电视台回应称已暂停其工作，等待警方调查结果",
)
REPLIES = (
    "",
    "转发微博",
    "太可怕了",
    "真的假的？",
    "[哈哈]顶",
    "求真相//@某人:早就知道了",
    "关注后续进展，希望依法处理",
)


@pytest.fixture(scope="module")
def grading_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grading_eval_h", BENCH / "grading_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["grading_eval_h"] = module
    spec.loader.exec_module(module)
    return module


def synthetic_rows() -> list[dict]:
    """Four events days apart, each a source and 25 reposts over two hours, repost texts from REPLIES."""
    rows = []
    start = datetime(2013, 5, 1, 9, 0, tzinfo=CST)
    for e, text in enumerate(STORIES):
        t0 = start + timedelta(days=3 * e, minutes=17 * e)
        sid = f"{e + 1}000"
        rows.append({"id": sid, "text": text, "created_at": t0.isoformat(), "source": "weibo", "author": f"a{e}",
                     "followers": 10**5 * (e + 1), "reposts": 500, "comments": 50, "likes": 0, "parent_id": None,
                     "event_id": sid, "label": "rumor" if e % 2 else "non-rumor"})  # fmt: skip
        for i in range(25):
            parent = sid if i < 5 else f"{e + 1}{i % 5 + 1:03d}"
            rows.append({"id": f"{e + 1}{i + 1:03d}", "text": REPLIES[(i + e) % len(REPLIES)],
                         "created_at": (t0 + timedelta(minutes=5 * i + 1, seconds=e)).isoformat(), "source": "weibo",
                         "author": f"u{e}-{i}", "followers": 50 + i, "reposts": i % 3, "comments": 0, "likes": 0,
                         "parent_id": parent, "event_id": sid, "label": None})  # fmt: skip
    rows.sort(key=lambda r: (r["created_at"], r["id"]))
    return rows


def _real_rows(n: int) -> list[dict]:
    path = default_data_dir() / "weibo_posts.jsonl"
    if not path.is_file():
        pytest.skip(f"no shared data at {path}")
    return read_rows(path, n)


@pytest.mark.parametrize("source", ["synthetic", "real"])
@pytest.mark.parametrize("concurrent", [0.0, 2.0])
def test_shuffling_event_id_and_label_changes_no_prediction(grading_eval, source, concurrent):
    rows = synthetic_rows() if source == "synthetic" else _real_rows(3000)
    if concurrent:
        rows, _ = concurrent_rows(rows, concurrent, seed=3)  # the scenario is built first, then the truth shuffled
    shuffled = shuffle_truth(rows, seed=7)
    assert [r["event_id"] for r in shuffled] != [r["event_id"] for r in rows]  # the shuffle did something
    policy = load_policy_file(DEFAULT_POLICY)
    plain, mixed = collect(rows), collect(shuffled)
    for variant in VARIANTS:
        assigned, alerts = grading_eval.predictions(plain, variant, policy)
        assigned2, alerts2 = grading_eval.predictions(mixed, variant, policy)
        assert assigned == assigned2 and alerts == alerts2, variant.name
        assert alerts  # the check compared something: the replay raised alerts


def test_concurrent_replay_keeps_each_events_own_timing():
    rows = synthetic_rows()
    moved, offsets = concurrent_rows(rows, 24, seed=1)
    assert sorted(r["id"] for r in moved) == sorted(r["id"] for r in rows)
    times = [datetime.fromisoformat(r["created_at"]) for r in moved]
    assert times == sorted(times)  # a time-ordered stream again

    def relative(rs: list[dict]) -> dict[str, dict[str, float]]:
        by_event: dict[str, dict[str, float]] = defaultdict(dict)
        for r in rs:
            by_event[r["event_id"]][r["id"]] = datetime.fromisoformat(r["created_at"]).timestamp()
        return {e: {p: t - min(ts.values()) for p, t in ts.items()} for e, ts in by_event.items()}

    assert relative(moved) == relative(rows)
    starts = {e: min(ts.values()) for e, ts in _abs(moved).items()}
    base = CONCURRENT_START.timestamp()
    assert all(base <= t <= base + 24 * 3600 for t in starts.values())
    assert max(starts.values()) - min(starts.values()) < 24 * 3600  # (the file spread them over 9 days)
    original = {e: min(ts.values()) for e, ts in _abs(rows).items()}
    # Exactly: the offsets are whole seconds like the posts' times (a fractional one put the ground-truth start
    # after the moved source post, and an alert on the source post counted as one from before the event).
    assert all(starts[e] == original[e] + offsets[e] for e in starts)
    assert concurrent_rows(rows, 24, seed=1)[0] == moved and concurrent_rows(rows, 24, seed=2)[0] != moved


def _abs(rs: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rs:
        out[r["event_id"]][r["id"]] = datetime.fromisoformat(r["created_at"]).timestamp()
    return out


def test_concurrent_replay_shifts_the_ground_truth_with_the_posts(grading_eval, tmp_path):
    import json

    rows = synthetic_rows()
    events = tmp_path / "weibo_events.jsonl"
    events.write_text("".join(json.dumps({"event_id": r["id"], "source_created_at": r["created_at"],
                                          "posts_within_hours_in_original_dataset": {"1": 13, "24": 26}}) + "\n"
                              for r in rows if r["parent_id"] is None), encoding="utf-8")  # fmt: skip
    from _eval_scores import truth_events

    moved, offsets = concurrent_rows(rows, 6, seed=4)
    truth = truth_events(events, moved, offsets)
    for eid, ev in truth.items():
        source = next(r for r in moved if r["id"] == eid)
        assert ev.start == datetime.fromisoformat(source["created_at"]).timestamp()


@pytest.mark.parametrize(
    ("text", "own", "bearing"),
    [
        ("转发微博", "", False),
        ("[哈哈][哈哈] //@某人:这是别人写的很长很长很长很长的一段话", "", False),
        ("回复@张三:同意 http://t.cn/abc @李四 ", "同意", False),
        ("某市住建局局长被实名举报受贿数百万元//@某人:转发", "某市住建局局长被实名举报受贿数百万元", True),
        ("真的假的？！！！……", "真的假的", False),
    ],
)
def test_own_words_and_text_bearing(text, own, bearing):
    assert own_words(text) == own
    assert text_bearing(text) is bearing


def test_baselines_and_the_table_rows(grading_eval, tmp_path, capsys):
    import json

    rows = synthetic_rows()
    data = tmp_path / "weibo_posts.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "weibo_events.jsonl").write_text("".join(
        json.dumps({"event_id": r["id"], "source_created_at": r["created_at"],
                    "posts_within_hours_in_original_dataset": {"1": 13, "6": 26, "24": 26 * (1 + i)}}) + "\n"
        for i, r in enumerate(x for x in rows if x["parent_id"] is None)), encoding="utf-8")  # fmt: skip
    out = tmp_path / "e.json"
    assert grading_eval.main(["--data", str(data), "--concurrent", "1", "--seed", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "concurrent: every event starts within 1 h (seed 2)" in printed
    got = {(r["variant"], r["method"]): r for r in json.loads(out.read_text())["rows"]}
    assert len(got) == 16
    kept, lost = "parents kept, counts as given", "parent_id removed, counts as given"
    assert got[(kept, "parent-following")]["f1"] == 1.0
    assert got[(kept, "grader")]["precision"] == 1.0  # parent links are authoritative
    single = got[(kept, "all-singletons")]
    assert single["precision"] == 1.0 and single["predicted_events"] == len(rows)
    # Without parents the grader never lumps two events together; the newest-event guess does.
    assert got[(lost, "grader")]["precision"] == 1.0
    assert got[(lost, "newest-event")]["precision"] < 0.9
