"""Relevance in cascade context: inheritance from the parent chain, own evidence first, hard negatives, the fitted
reaction map's file, and (with ../shared/data) that the in-context score does not lower F1 on the calibrate half.

The sentences below are written for this test; the labelled posts are only used through bench/relevance_eval.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from qingfeng.text import Enricher, LexiconError, Relevance
from qingfeng.text.relevance_context import (
    BARE,
    NO_REACTION,
    REACTION,
    CascadeContext,
    ContextPolicy,
    builtin_context_policy,
    is_bare,
    load_context_policy,
    relevance_in_context,
)

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))

import relevance_eval  # noqa: E402

DATA = Path(os.environ.get("QF_SHARED_DATA", REPO / ".." / "shared" / "data"))
LABELS = REPO / "tests" / "data" / "relevance" / "labels.jsonl"
HALF = ContextPolicy("test", ((0.0, 0.0), (0.5, 0.1), (1.0, 0.3)))  # a reaction under a 0.9 parent: 0.26

CORRUPT = "某县长受贿三百万被纪委双规"


def _own(enricher: Enricher, text: str) -> Relevance:
    return enricher.enrich(text).relevance


@pytest.mark.parametrize(
    "text", ["", "转发微博", "[哈哈][哈哈]", "@某人 @另一人", "  ！！！", "转发", "//@张三:贪官被抓", "// @张三 :贪官"]
)
def test_posts_without_words_of_their_own_are_bare(text: str) -> None:
    assert is_bare(text)


@pytest.mark.parametrize("text", ["呵呵", "终于干掉了", "人类已无法理解。。。", "好 //@张三:贪官被抓了"])
def test_posts_with_words_are_not_bare(text: str) -> None:
    assert not is_bare(text)


def test_a_bare_repost_inherits_its_parents_score_with_a_reason_naming_it(enricher: Enricher) -> None:
    parent = _own(enricher, CORRUPT)
    assert parent.score >= 0.8
    own = _own(enricher, "转发微博")
    assert own.score == 0.0 and not own.reasons
    got = relevance_in_context(own, parent, bare=True, parent_id="p1", policy=HALF)
    assert got.score == parent.score
    (reason,) = got.reasons
    assert reason.criterion == BARE and reason.weight == parent.score
    assert reason.evidence[0].startswith("inherits from parent p1: ")
    assert reason.evidence[1].startswith("post p1: ")  # the origin: the parent's own strongest reason
    assert parent.reasons[0].criterion in reason.evidence[1]


def test_a_reaction_without_evidence_inherits_through_the_map(enricher: Enricher) -> None:
    parent = Relevance(0.9, (), "v", 0.9)
    own = _own(enricher, "呵呵，人类已无法理解")
    assert not own.reasons
    got = relevance_in_context(own, parent, bare=False, parent_id="p1", policy=HALF)
    assert got.score == pytest.approx(0.26)
    assert got.reasons[0].criterion == REACTION
    assert "inherits from parent p1: 0.9 -> 0.26" in got.reasons[0].evidence[0]
    # without a reaction map a reaction keeps its own 0
    assert relevance_in_context(own, parent, bare=False, parent_id="p1", policy=NO_REACTION) is own


def test_own_evidence_wins_over_the_parent(enricher: Enricher) -> None:
    own = _own(enricher, "这个局长贪污了")
    assert own.score > 0 and own.reasons
    for parent_score in (0.0, 0.2, 0.99):
        parent = Relevance(parent_score, (), "v", parent_score)
        assert relevance_in_context(own, parent, bare=False, parent_id="p", policy=HALF) is own


def test_a_hard_negative_keeps_its_own_zero_under_a_relevant_parent(enricher: Enricher) -> None:
    parent = _own(enricher, CORRUPT)
    own = _own(enricher, "纳达尔在公开赛爆冷落马")
    assert own.score == 0.0
    assert any(r.criterion.startswith("suppressed:") for r in own.reasons), own.reasons  # negative evidence
    got = relevance_in_context(own, parent, bare=False, parent_id="p", policy=HALF)
    assert got is own and got.score == 0.0


def test_no_parent_known_or_a_parent_at_zero_leaves_the_own_score(enricher: Enricher) -> None:
    own = _own(enricher, "转发微博")
    assert relevance_in_context(own, None, bare=True, policy=HALF) is own
    assert relevance_in_context(own, Relevance(0.0, (), "v"), bare=True, policy=HALF) is own


def test_the_chain_is_followed_through_bare_reposts_and_reactions(enricher: Enricher) -> None:
    texts = {"s": CORRUPT, "a": "转发微博", "b": "", "c": "呵呵", "d": "转发微博", "x": "转发微博"}
    parents = {"a": "s", "b": "a", "c": "b", "d": "c", "x": "gone"}
    asked: list[str] = []

    def own_of(pid: str) -> tuple[Relevance, bool]:
        asked.append(pid)
        return _own(enricher, texts[pid]), is_bare(texts[pid])

    def parent_of(pid: str) -> str | None:
        parent = parents.get(pid)
        return parent if parent in texts else None  # the caller's rule: unknown (or later) parents are None

    chain = CascadeContext(own_of, parent_of, HALF)
    source = chain.score("s")
    b = chain.score("b")  # bare of bare of the source
    assert b.score == source.score
    assert b.reasons[0].evidence[0].startswith("inherits from parent a: ")
    assert b.reasons[0].evidence[1].startswith("post s: ")  # the origin, however long the chain
    c = chain.score("c")  # a reaction under that chain
    assert c.reasons[0].criterion == REACTION
    assert c.score == pytest.approx(0.1 + 0.2 * (source.score - 0.5) / 0.5, abs=1e-4)
    d = chain.score("d")  # a bare repost of the reaction carries the reaction's score
    assert d.score == c.score and d.reasons[0].evidence[1].startswith("post s: ")
    assert asked.count("s") == 1  # each post scored once
    # a parent the caller cannot give (unknown, or later than the post) means no parent
    assert chain.score("x").score == 0.0


def test_a_loop_of_parent_ids_ends_the_walk(enricher: Enricher) -> None:
    chain = CascadeContext(lambda _p: (_own(enricher, "转发微博"), True), {"a": "b", "b": "a"}.get, HALF)
    assert chain.score("a").score == 0.0


def test_the_builtin_reaction_map_is_fitted_on_the_calibrate_half_and_stays_low() -> None:
    policy = builtin_context_policy()
    assert "split calibrate" in policy.source, policy.source
    ys = [y for _, y in policy.reaction_knots]
    assert ys == sorted(ys)
    # the labels judge a reaction on its own words: no reaction crosses the routing threshold on inheritance alone
    assert max(ys) < 0.5


def test_a_bad_context_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "ctx.yaml"
    good = (REPO / "libs" / "qingfeng" / "text" / "lexicons" / "relevance_context.yaml").read_text(encoding="utf-8")
    path.write_text(good.replace("reaction_knots:\n", "reaction_knots:\n  - [0.5, 0.9]\n", 1), encoding="utf-8")
    with pytest.raises(LexiconError) as caught:
        load_context_policy(path)
    assert caught.value.path == str(path) and caught.value.field.startswith("reaction_knots")


def test_the_event_evaluation_scores_posts_in_context_without_looking_ahead() -> None:
    from datetime import UTC, datetime, timedelta

    from _eval_relevance import context_relevance

    from services.grader.core import PostView

    t0 = datetime(2014, 1, 1, tzinfo=UTC)
    views = [
        PostView("a", t0, text=CORRUPT, relevance=0.95),
        PostView("a1", t0 + timedelta(seconds=1), text="转发微博", parent_id="a"),
        PostView("a2", t0 + timedelta(seconds=2), text="纳达尔在公开赛爆冷落马", parent_id="a"),
        PostView("a3", t0 + timedelta(seconds=3), text="", parent_id="a1"),
        PostView("z", t0 + timedelta(seconds=4), text="", parent_id="late"),  # its parent comes after it
        PostView("late", t0 + timedelta(seconds=5), text=CORRUPT, relevance=0.95),
    ]
    got = context_relevance(views)
    assert got == {"a": 0.95, "a1": 0.95, "a2": 0.0, "a3": 0.95, "z": 0.0, "late": 0.95}


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "weibo_posts.jsonl").is_file(), reason=f"shared data not found at {DATA}")
@pytest.mark.skipif(not LABELS.is_file(), reason=f"no labels at {LABELS}")
def test_in_context_does_not_lower_f1_on_the_calibrate_half(enricher: Enricher) -> None:
    items, _ = relevance_eval.load_items(LABELS, relevance_eval.DEFAULT_WRITTEN, DATA)
    calibrate = [i for i in items if i.split == "calibrate"]  # the report half is not read here
    context = relevance_eval.context_scores(calibrate, enricher, DATA)
    inherited = [r for r in context if r.reasons and r.reasons[0].criterion.startswith("context:")]
    assert inherited, "some calibrate posts inherit from their parent chain"
    rows = relevance_eval.evaluate(calibrate, enricher, context=context)["calibrate"]["rows"]
    for t in ("0.8", "0.5"):
        post_only = rows[f"score >= {t} (policy)"]["f1"]
        in_context = rows[f"{relevance_eval.CONTEXT} >= {t} (policy)"]["f1"]
        assert in_context >= post_only, (t, in_context, post_only)
    assert rows[f"{relevance_eval.CONTEXT} >= 0.8 (policy)"]["f1"] > rows["keyword rule"]["f1"]
