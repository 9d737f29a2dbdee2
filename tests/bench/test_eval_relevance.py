"""bench/_eval_relevance.py: event relevance aggregates from the post scores agree with the grader's own metrics."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _eval_relevance import ALL, EVIDENCE, GRADER, event_labels, event_relevance, first_posts
from _pipeline import replay

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
from services.grader.core import GraderConfig, PostView

T0 = datetime(2014, 1, 1, tzinfo=UTC)


def _views() -> list[PostView]:
    """Two cascades: a relevant source (0.99) with weakly evidenced and empty replies, and an unrelated one."""
    out = [PostView("a", T0, author_id="ua", relevance=0.99), PostView("b", T0 + timedelta(seconds=5), author_id="ub")]
    for i in range(12):
        at = T0 + timedelta(minutes=i + 1)
        out.append(PostView(f"a{i}", at, author_id=f"ua{i}", parent_id="a", relevance=0.19 if i % 3 == 0 else 0.0))
        out.append(PostView(f"b{i}", at, author_id=f"ub{i}", parent_id="b", relevance=0.87 if i == 5 else 0.0))
    return out


def test_the_three_aggregates_and_the_labelled_events(tmp_path):
    views = _views()
    result = replay(views, load_policy_file(DEFAULT_POLICY), GraderConfig())
    truth = {v.id: v.id[0] for v in views}  # native ids are the post ids here
    native = {v.id: v.id for v in views}
    rows = [{"id": v.id, "event_id": v.id[0], "created_at": v.created_at.isoformat()} for v in views]
    first = first_posts(rows)
    assert first == {"a": "a", "b": "b"}
    labels_file = tmp_path / "labels.jsonl"
    labels_file.write_text("\n".join(json.dumps(r) for r in ({"id": "a", "label": 1}, {"id": "b5", "label": 0})))
    labels = event_labels(truth, first, labels_file)
    assert labels == {"a": 1, "b": 0}
    er = event_relevance(result, views, native, truth, first, ["a", "b"], labels)
    assert er.events == 2 and er.source_ge_08 == 1 and (er.labelled, er.relevant) == (2, 1)
    # a: 13 posts, 0.99 + 4 x 0.19 with evidence; b: one 0.87 reply in 13 posts.
    assert er.reached[ALL] == {0.5: 0, 0.8: 0}
    assert er.reached[EVIDENCE] == {0.5: 1, 0.8: 1}  # b's one reply (0.87); a's mean (0.99 + 0.76) / 5 = 0.35
    assert er.reached[GRADER] == {0.5: 2, 0.8: 2}
    assert er.quality[GRADER][0.8] == (0.5, 1.0) and er.quality[EVIDENCE][0.8] == (0.0, 0.0)
    # The aggregate computed from the scores is the grader's own (both events are still in its memory here).
    assert result.grader is not None
    got = {eid: ev.metrics.total.relevance for eid, ev in result.grader.events.items()}
    assert got == {"ev-a": pytest.approx(0.99), "ev-b": pytest.approx(0.87)}
