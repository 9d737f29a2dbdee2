"""Calibrated relevance: the fitted map, negative contexts, hard cases, the policy's validation and the evaluation.

The hard cases below are sentences written for this test, not labelled posts (those are in tests/data/relevance and
only used through bench/relevance_eval.py).
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from qingfeng.text import Enricher, LexiconError, Lexicons, load_lexicons
from qingfeng.text.relevance import calibrate

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))

import relevance_calibrate  # noqa: E402
import relevance_eval  # noqa: E402

DATA = Path(os.environ.get("QF_SHARED_DATA", REPO / ".." / "shared" / "data"))
POLICY_THRESHOLD = 0.8  # the grader's blue criterion (services/grader/policies/four_level.v1.yaml)


def test_builtin_calibration_is_monotone_and_bounded(lexicons: Lexicons) -> None:
    knots = lexicons.relevance.calibration
    assert knots, "the built-in policy carries a fitted calibration"
    assert "isotonic" in lexicons.relevance.calibration_source
    grid = [i / 1000 for i in range(1001)]
    mapped = [calibrate(knots, x) for x in grid]
    assert all(0.0 <= y <= 1.0 for y in mapped)
    assert mapped == sorted(mapped)
    assert mapped[-1] > mapped[0]  # it separates something


def test_calibrate_interpolates_between_knots() -> None:
    knots = ((0.0, 0.1), (0.5, 0.3), (1.0, 0.9))
    assert calibrate(knots, 0.25) == pytest.approx(0.2)
    assert calibrate(knots, 0.75) == pytest.approx(0.6)
    assert calibrate(knots, 1.0) == pytest.approx(0.9)
    assert calibrate((), 0.42) == 0.42  # no calibration: the raw score


def test_isotonic_fit_pools_violators_into_monotone_knots() -> None:
    pairs = [(0.1, 0), (0.1, 1), (0.2, 0), (0.3, 1), (0.3, 0), (0.5, 1), (0.55, 1), (0.6, 0), (0.9, 1)]
    blocks = relevance_calibrate.fit_isotonic(pairs)
    shares = [pos / n for _, _, n, pos in blocks]
    assert shares == sorted(shares)
    assert sum(n for _, _, n, _ in blocks) == len(pairs)
    knots = relevance_calibrate.knots_of(blocks)
    assert knots[0][0] == 0.0 and knots[-1][0] == 1.0
    assert [x for x, _ in knots] == sorted({x for x, _ in knots})
    assert [y for _, y in knots] == sorted(y for _, y in knots)
    assert all(0 < y < 1 for _, y in knots)  # smoothed: never a certainty from a handful of posts


def test_isotonic_fit_keeps_equal_scores_together_whatever_their_order() -> None:
    # a negative at 0.45 sorts before the positives at 0.45; it must not drag them into the block below
    pairs = [(0.03, 0)] * 10 + [(0.4, 0)] + [(0.45, 0)] + [(0.45, 1)] * 4
    assert relevance_calibrate.fit_isotonic(pairs) == [(0.03, 0.4, 11, 0), (0.45, 0.45, 5, 4)]


def test_isotonic_fit_merges_small_blocks_into_the_closest_neighbour() -> None:
    pairs = [(0.1, 0)] * 20 + [(0.5, 1)] * 3 + [(0.5, 0)] + [(0.6, 1)] * 19 + [(0.6, 0)]
    blocks = relevance_calibrate.fit_isotonic(pairs, min_posts=10)
    assert blocks == [(0.1, 0.1, 20, 0), (0.5, 0.6, 24, 22)]  # 3/4 joins 19/20, not 0/20
    assert relevance_calibrate.fit_isotonic(pairs) == [(0.1, 0.1, 20, 0), (0.5, 0.5, 4, 3), (0.6, 0.6, 20, 19)]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("纳达尔在温网第二轮爆冷落马", "sport"),
        ("冰箱坏了，里面的肉已经腐败变质", "spoilage"),
        ("周末发工资了，约上闺蜜去海底捞腐败一下", "splurge"),
        ("美国官员今天抵达北京访问", "foreign"),
        ("武松在景阳冈打虎的故事", "tiger"),
        ("我表哥下个月结婚，要回老家", "cousin"),
        ("接受调查的网友中有六成表示支持", "survey"),
        ("某明星嫖娼被抓，粉丝表示失望", "entertainment"),
    ],
)
def test_hard_negatives_are_suppressed_with_a_reason(enricher: Enricher, text: str, rule: str) -> None:
    relevance = enricher.enrich(text).relevance
    assert relevance.score < 0.5
    suppressed = [r for r in relevance.reasons if r.criterion == f"suppressed:{rule}"]
    assert suppressed and suppressed[0].weight == 0.0 and suppressed[0].evidence


@pytest.mark.parametrize(
    "text",
    ["宿舍里的腐女又在讨论动漫", "这只猫太贪吃了", "豆腐脑要甜的还是咸的", "水果放久了就腐烂了", "渔民的贪婪毁了近海"],
)
def test_hard_negatives_without_vocabulary_score_zero(enricher: Enricher, text: str) -> None:
    relevance = enricher.enrich(text).relevance
    assert relevance.score == 0.0 and not any(r.weight > 0 for r in relevance.reasons)


_HARD_POSITIVES = [
    "某局长开着特权车一路闯红灯",
    "官二代酒后飙车撞人，扬长而去",
    "天价烟局长被免职",
    "房叔名下有二十多套房产",
    "表哥杨达才每次视察都戴不同的名表",
    "县长带人强拆民房，老人被打伤",
    "扶贫款到了镇上就少了一半，剩下的被几个干部分了",
    "某市委书记落马，纪委通报其受贿",
]


@pytest.mark.parametrize("text", _HARD_POSITIVES)
def test_hard_positives_pass_the_routing_threshold_with_reasons(enricher: Enricher, text: str) -> None:
    relevance = enricher.enrich(text).relevance
    assert relevance.score >= 0.5, relevance  # the coordinator's 涉腐 routing
    assert any(r.weight > 0 for r in relevance.reasons)


def test_most_hard_positives_pass_the_policy_threshold(enricher: Enricher) -> None:
    # The calibrated map gives 0.8 only where the labelled posts were >= 80 % relevant; an official with a conduct
    # cue alone (干部 + 扶贫款) or a nickname with a luxury word (表哥 + 名表) is often a vague complaint or a joke
    # in the Weibo set, so such a post may stay just below. Most of these unambiguous sentences must pass.
    passed = [t for t in _HARD_POSITIVES if enricher.enrich(t).relevance.score >= POLICY_THRESHOLD]
    assert len(passed) >= 6, passed


def test_conduct_needs_a_holder_of_power(enricher: Enricher) -> None:
    with_official = enricher.enrich("这个官员真恶心").relevance
    assert [r.evidence for r in with_official.reasons if r.criterion == "official_conduct"] == [("官员", "恶心")]
    assert enricher.enrich("这个菜真恶心").relevance.score == 0.0


def test_every_score_has_its_reasons(enricher: Enricher) -> None:
    texts = ["今天天气不错", "北京今天下雪", "县长视察学校", "贪官落马", "这个官员真恶心", "纳达尔爆冷落马"]
    for text in texts:
        relevance = enricher.enrich(text).relevance
        contributing = [r for r in relevance.reasons if r.weight > 0]
        assert (relevance.score > 0) == bool(contributing), text
        assert 0.0 <= relevance.raw <= 1.0 and 0.0 <= relevance.score <= 1.0


def _policy(tmp_path: Path, tail: str) -> Path:
    head = """\
        kind: relevance
        version: "t-1"
        weights: {corruption_scale: 1.0, official: 0.1, official_corruption: 0.35, offline: 0.12,
                  offline_corruption: 0.2, region: 0.03, region_corruption: 0.07}
        """
    path = tmp_path / "relevance.yaml"
    path.write_text(textwrap.dedent(head) + textwrap.dedent(tail), encoding="utf-8")
    return path


_BLOCK = """\
    calibration:
      method: isotonic
      fitted_at: "2026-11-30"
      labels: tests/data/relevance/labels.jsonl
      labels_sha256: {sha}
      split: calibrate
      posts: {posts}
      relevant: 10
      knots: {knots}
    """
_SHA = "a" * 64


def test_a_valid_calibration_block_is_applied(tmp_path: Path) -> None:
    path = _policy(tmp_path, _BLOCK.format(sha=_SHA, posts=20, knots="[[0, 0.1], [0.5, 0.9], [1, 0.95]]"))
    policy = load_lexicons([path]).relevance
    assert policy.calibration == ((0.0, 0.1), (0.5, 0.9), (1.0, 0.95))
    assert "10/20 relevant" in policy.calibration_source
    enricher = Enricher(load_lexicons([path]))
    relevance = enricher.enrich("市长受贿").relevance
    assert relevance.score == pytest.approx(calibrate(policy.calibration, relevance.raw), abs=1e-4)
    assert relevance.score != relevance.raw


@pytest.mark.parametrize(
    ("tail", "field", "message"),
    [
        (_BLOCK.format(sha=_SHA, posts=20, knots="[[0, 0.5], [0.5, 0.4], [1, 0.9]]"), "calibration.knots", "decrease"),
        (
            _BLOCK.format(sha=_SHA, posts=20, knots="[[0, 0.1], [0.5, 0.4], [0.5, 0.9], [1, 1]]"),
            "calibration.knots",
            "increase",
        ),
        (_BLOCK.format(sha=_SHA, posts=20, knots="[[0.1, 0.1], [1, 0.9]]"), "calibration.knots", "first knot"),
        (_BLOCK.format(sha=_SHA, posts=20, knots="[[0, 0.1], [1, 1.5]]"), "calibration.knots", "less than or equal"),
        (_BLOCK.format(sha=_SHA, posts=20, knots="[[0, 0.1]]"), "calibration.knots", "at least 2"),
        (_BLOCK.format(sha="not-a-hash", posts=20, knots="[[0, 0.1], [1, 0.9]]"), "calibration.labels_sha256", ""),
        (_BLOCK.format(sha=_SHA, posts=5, knots="[[0, 0.1], [1, 0.9]]"), "calibration", "cannot exceed"),
        ("suppress:\n  - {id: x, terms: [不是词条], context: [比赛]}\n", "suppress[0].terms[0]", "not a term"),
        ("suppress:\n  - {id: x, terms: [落马], context: []}\n", "suppress[0].context", "at least 1"),
        ("suppress:\n  - {id: x, terms: [落马], context: [比赛], when: far}\n", "suppress[0].when", ""),
        ("conduct: {weight: 1.5, cues: [恶心]}\n", "conduct.weight", "less than or equal"),
    ],
)
def test_bad_policy_blocks_are_refused_with_file_and_field(tmp_path: Path, tail: str, field: str, message: str) -> None:
    path = _policy(tmp_path, tail)
    with pytest.raises(LexiconError) as caught:
        load_lexicons([path])
    assert caught.value.path == str(path)
    assert caught.value.field.startswith(field), caught.value
    assert message in str(caught.value)


def test_evaluation_metrics_on_a_small_table() -> None:
    m = relevance_eval.metrics([True, True, False, False], [1, 0, 1, 0])
    assert (m.precision, m.recall, m.f1, m.flagged) == (0.5, 0.5, 0.5, 2)
    assert relevance_eval.metrics([False, False], [1, 0]).f1 == 0.0
    scores, labels = [0.9, 0.85, 0.6, 0.2, 0.0], [1, 1, 0, 1, 0]
    assert relevance_eval.best_threshold(scores, labels) == 0.2  # F1 0.857 beats 0.85's 0.8
    assert relevance_eval.best_threshold([0.9, 0.8], [1, 1]) == 0.8
    table = relevance_eval.reliability(scores, labels, (0.0, 0.0001, 0.5, 1.0))
    assert [(name, n) for name, n, _, _ in table] == [("0 (no evidence)", 1), ("[0.00, 0.50)", 1), ("[0.50, 1.00]", 3)]
    assert table[2][3] == pytest.approx(2 / 3)


def test_keyword_rule_is_the_one_liner() -> None:
    assert relevance_eval.KEYWORD_RULE.search("某官员被查")
    assert not relevance_eval.KEYWORD_RULE.search("县长视察学校")


_LABELS = REPO / "tests" / "data" / "relevance" / "labels.jsonl"


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "weibo_posts.jsonl").is_file(), reason=f"shared data not found at {DATA}")
@pytest.mark.skipif(not _LABELS.is_file(), reason=f"no labels at {_LABELS}")
def test_report_split_beats_the_keyword_rule(enricher: Enricher) -> None:
    items, _ = relevance_eval.load_items(_LABELS, relevance_eval.DEFAULT_WRITTEN, DATA)
    result = relevance_eval.evaluate(items, enricher)
    report = result["report"]
    assert report["posts"] >= 100 and 0 < report["relevant"] < report["posts"]
    rows = report["rows"]
    keyword = rows["keyword rule"]["f1"]
    best = next(m for name, m in rows.items() if "best F1 on calibrate" in name)
    at_policy = rows["score >= 0.8 (policy)"]
    assert best["f1"] > keyword
    assert at_policy["f1"] > keyword
    assert rows["score >= 0.8 (policy)"]["f1"] > rows["all relevant"]["f1"]
