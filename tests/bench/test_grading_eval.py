"""Smoke test of bench/grading_eval.py on a tiny synthetic file in the shared data's format (not timed)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def grading_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grading_eval", ROOT / "bench" / "grading_eval.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["grading_eval"] = module
    spec.loader.exec_module(module)
    return module


SOURCES = (
    "某市住建局局长被实名举报受贿数百万元，纪委已介入调查",
    "网传某县中学食堂发生集体食物中毒，学校称正在核实情况",
    "某地高速公路发生多车追尾事故，交警提醒绕行注意安全",
)


def _write(tmp_path: Path) -> Path:
    """Three events two days apart, each a source post and reposts (no words of their own) in the next hour."""
    posts, events = [], []
    start = datetime(2013, 5, 1, 9, 0, tzinfo=CST)
    for e, text in enumerate(SOURCES):
        t0 = start + timedelta(days=2 * e)
        source_id = f"{e + 1}000"
        n = 10 * (e + 1)  # 10, 20 and 30 reposts: sizes differ
        posts.append(
            {"id": source_id, "text": text, "created_at": t0.isoformat(), "source": "weibo", "author": f"a{e}",
             "followers": 1000, "reposts": n, "comments": 5, "likes": 0, "parent_id": None, "event_id": source_id,
             "label": "rumor"}
        )  # fmt: skip
        for i in range(n):
            posts.append(
                {"id": f"{e + 1}{i + 1:03d}", "text": "", "created_at": (t0 + timedelta(minutes=2 * i + 1)).isoformat(),
                 "source": "weibo", "author": f"u{e}-{i}", "followers": 50, "reposts": 0, "comments": 0, "likes": 0,
                 "parent_id": source_id, "event_id": source_id, "label": None}
            )  # fmt: skip
        events.append(
            {"event_id": source_id, "label": "rumor", "source_created_at": t0.isoformat(),
             "posts_within_hours_in_original_dataset": {"1": n + 1, "6": 3 * n, "24": 10 * n, "72": 10 * n,
                                                        "168": 10 * n}}
        )  # fmt: skip
    posts.sort(key=lambda p: (p["created_at"], p["id"]))
    data = tmp_path / "weibo_posts.jsonl"
    data.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in posts), encoding="utf-8")
    (tmp_path / "weibo_events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return data


def test_table_has_the_four_rows_and_perfect_clustering_with_parents(grading_eval, tmp_path, capsys):
    data = _write(tmp_path)
    out = tmp_path / "eval.json"
    assert grading_eval.main(["--data", str(data), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    names = [
        "parents kept, counts as given",
        "parents kept, counts zeroed",
        "parent_id removed, counts as given",
        "parent_id removed, counts zeroed",
    ]
    table = [line for line in printed.splitlines() if any(line.startswith(n) for n in names)]
    assert [next(n for n in names if line.startswith(n)) for line in table[:4]] == names
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["posts"] == 63 and result["events"] == 3
    rows = {r["variant"]: r for r in result["rows"] if r["method"] == "grader"}
    assert list(rows) == names
    for name in names[:2]:
        assert (rows[name]["precision"], rows[name]["recall"], rows[name]["f1"]) == (1.0, 1.0, 1.0)
        assert rows[name]["predicted_events"] == 3
    for row in rows.values():
        assert 0.0 <= row["f1"] <= 1.0 and row["top_events"] == 1


def test_spearman_uses_average_ranks_for_ties(grading_eval):
    assert grading_eval.spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert grading_eval.spearman([3, 2, 1], [10, 20, 30]) == pytest.approx(-1.0)
    assert grading_eval.average_ranks([5, 1, 5, 3]) == [3.5, 1.0, 3.5, 2.0]
    assert grading_eval.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(3.0))
    assert math.isnan(grading_eval.spearman([1, 1, 1], [1, 2, 3]))


def test_half_size_time_interpolates_the_cumulative_curve(grading_eval):
    # 1 post at 0 s, 11 by 1 h, 101 by 6 h: half of 200 (100) falls between 1 h and 6 h.
    curve = [(3600.0, 11), (6 * 3600.0, 101), (24 * 3600.0, 200)]
    expected = 3600.0 + 5 * 3600.0 * (100 - 11) / (101 - 11)
    assert grading_eval.half_size_time(curve, 200) == pytest.approx(expected)
    assert grading_eval.half_size_time(curve, 2) == 0.0  # the source post alone is half of 2


def test_report_calibration_scores_the_other_half_of_the_split(grading_eval, tmp_path, capsys):
    """`--report calibration` scores the events the thresholds were chosen on; by default the held-out ones."""
    data = _write(tmp_path)
    scored = {}
    for report in ("held-out", "calibration"):
        out = tmp_path / f"{report}.json"
        argv = ["--data", str(data), "--split", "event", "--only", "noparents", "--baselines", "", "--red-top", "0"]
        assert grading_eval.main([*argv, "--report", report, "--json", str(out)]) == 0
        assert ("scored on it" in capsys.readouterr().out) == (report == "calibration")
        scored[report] = json.loads(out.read_text(encoding="utf-8"))["scored_events"]
    assert scored == {"held-out": 2, "calibration": 1}  # 3 events: a half (1) calibrates, the other 2 report
