"""Event relevance (涉腐) for bench/grading_eval.py: how the grader's event aggregate of the post scores sorts events,
against the hand-labelled posts of tests/data/relevance/labels.jsonl.

An event's label is that of its source post when the source post is labelled (the post that says what the event is
about), else the majority of its labelled posts (ties: relevant). The predicted event of a ground-truth event is its
majority event. Three aggregates of the post scores are compared on the same replay: the mean over every post of the
event (the grader's aggregate before issue #11), the mean over the posts whose score has evidence (> 0), and the
grader's aggregate now: the larger of that mean and the score of the event's source (earliest) post. The grader's
own metrics are not read: a replay spanning months has expired most events from its memory by the end (the test
checks the two agree on events still in memory).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _pipeline import Replay

from services.grader.core import PostView

__all__ = ["LABELS", "EventRelevance", "event_labels", "event_relevance", "first_posts", "print_event_relevance"]

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "relevance" / "labels.jsonl"
THRESHOLDS = (0.5, 0.8)  # the coordinator's 涉腐 routing, the grader's blue criterion
ALL = "mean over all posts (before)"
EVIDENCE = "mean over posts with evidence"
GRADER = "grader: max(source post, that mean)"


@dataclass(frozen=True)
class EventRelevance:
    """Counts over the scored ground-truth events (via their majority events)."""

    events: int
    source_ge_08: int  # events whose source post scores >= 0.8
    reached: dict[str, dict[float, int]]  # aggregate -> threshold -> events at or above it
    labelled: int
    relevant: int
    # aggregate -> threshold -> (precision, recall) against the events' labels
    quality: dict[str, dict[float, tuple[float, float]]]


def event_labels(truth_post: dict[str, str], first_post: dict[str, str], path: Path = LABELS) -> dict[str, int]:
    """Ground-truth event -> 0/1 from the labelled posts (source post's label first, else the majority)."""
    if not path.is_file():
        return {}
    votes: dict[str, list[int]] = defaultdict(list)
    source: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        event = truth_post.get(row["id"])
        if event is None:
            continue
        votes[event].append(int(row["label"]))
        if first_post.get(event) == row["id"]:
            source[event] = int(row["label"])
    return {e: source.get(e, int(2 * sum(v) >= len(v))) for e, v in votes.items()}


def event_relevance(
    result: Replay,
    views: Iterable[PostView],
    native_of: dict[str, str],
    truth_post: dict[str, str],
    first_post: dict[str, str],
    events: Iterable[str],
    labels: dict[str, int],
) -> EventRelevance:
    """Event relevance of the grader's replay under both aggregates, over the ground-truth `events`."""
    wanted = set(events)
    score: dict[str, float] = {}
    members: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for v in views:
        score[native_of[v.id]] = v.relevance
        eid = result.assigned.get(v.id)
        if eid is None:
            continue
        members[eid].append(round(v.relevance * 1000) / 1000)
        truth = truth_post.get(native_of[v.id])
        if truth in wanted:
            counts[truth][eid] += 1
    agg: dict[str, dict[str, float]] = {ALL: {}, EVIDENCE: {}, GRADER: {}}
    for truth, by_event in counts.items():
        eid = max(by_event.items(), key=lambda kv: (kv[1], kv[0]))[0]
        s = members[eid]
        agg[ALL][truth] = sum(s) / len(s)
        with_evidence = [x for x in s if x > 0]
        agg[EVIDENCE][truth] = sum(with_evidence) / len(with_evidence) if with_evidence else 0.0
        agg[GRADER][truth] = max(agg[EVIDENCE][truth], s[0])  # views come in time order: s[0] is the source
    scored = sorted(counts)
    source_hi = sum(score.get(first_post.get(e, ""), 0.0) >= 0.8 for e in scored)
    reached = {name: {t: sum(vals[e] >= t for e in scored) for t in THRESHOLDS} for name, vals in agg.items()}
    lab = [e for e in scored if e in labels]
    relevant = [e for e in lab if labels[e]]
    quality: dict[str, dict[float, tuple[float, float]]] = {}
    for name, vals in agg.items():
        quality[name] = {}
        for t in THRESHOLDS:
            flagged = [e for e in lab if vals[e] >= t]
            tp = sum(labels[e] for e in flagged)
            quality[name][t] = (tp / len(flagged) if flagged else float("nan"), tp / len(relevant) if relevant else 0.0)
    return EventRelevance(len(scored), source_hi, reached, len(lab), len(relevant), quality)


def first_posts(rows: Sequence[dict[str, object]]) -> dict[str, str]:
    """Ground-truth event -> the id of its earliest post (its source post)."""
    out: dict[str, tuple[str, str]] = {}
    for r in rows:
        e, at, pid = str(r["event_id"]), str(r["created_at"]), str(r["id"])
        if e not in out or (at, pid) < out[e]:
            out[e] = (at, pid)
    return {e: pid for e, (_, pid) in out.items()}


def print_event_relevance(name: str, er: EventRelevance) -> None:
    print(
        f"event relevance (涉腐), {name}: {er.events} events, {er.source_ge_08} with a source post >= 0.8; "
        f"{er.labelled} have labelled posts ({er.relevant} relevant, tests/data/relevance/labels.jsonl)"
    )
    for agg, reached in er.reached.items():
        cells = []
        for t, n in reached.items():
            p, r = er.quality[agg][t]
            cells.append(f">= {t:g}: {n} events, labelled P {p:.2f} R {r:.2f}")
        print(f"  {agg:36} " + "; ".join(cells))
