"""What the grader says about an event: its grade with the reasons (cool-down and override notes included), and
its snapshot (Grader._grade/_flush/event). Built from the engine's state; nothing here changes a level."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ._record import EventRecord
from .grading import reasons_for
from .model import LEVELS, EventSnapshot, Grade, Reason, WindowMetrics

if TYPE_CHECKING:
    from .engine import Grader

__all__ = ["grade_of", "snapshot_of"]


def grade_of(g: Grader, ev: EventRecord) -> Grade:
    """Build (and keep on the event) its grade at its last evaluation."""
    assert ev.evaluation is not None
    raw, fired, at, rising, effective = ev.evaluation
    p, state, labels = g.policy, ev.state, g.labels
    reasons = reasons_for(g.cp, raw, fired)
    hold_until = None
    if state.below_since is not None:
        hold_until = datetime.fromtimestamp(state.below_since + p.cooldown_seconds, tz=at.tzinfo)
        until = hold_until.isoformat()
        note = f"降级冷却中: 政策级别为{labels[raw] or '无'}, 保持{labels[state.rank]}至{until}"
        reasons = (Reason("cooldown", float(raw), float(state.rank), "<", LEVELS[state.rank], note=note), *reasons)
    o = ev.override
    if o is not None:
        note = f"人工调整为{labels[effective] or '无'}({o.by}): {o.reason}"
        reasons = (Reason("override", float(effective), float(raw), "", o.level, note=note), *reasons)
    ev.grade = Grade(LEVELS[effective], labels[effective], p.scheme, p.version, reasons, at, LEVELS[raw],
                     rising, o, hold_until)  # fmt: skip
    return ev.grade


def snapshot_of(g: Grader, ev: EventRecord, metrics: tuple[WindowMetrics, ...]) -> EventSnapshot:
    """The event as published, with the given window records; title and keywords refreshed from its cluster."""
    cluster = g.clusterer.clusters.get(ev.id)
    if cluster is not None:
        ev.title = cluster.title
        ev.keywords = g.clusterer.keywords(ev.id)
    m = ev.metrics
    grade = ev.grade
    # Positional, in EventSnapshot's field order (keywords cost more per call): one snapshot per post.
    return EventSnapshot(
        ev.id,  # event_id
        ev.title,
        ev.keywords,
        ev.first_at,  # first_seen
        ev.last_at,  # last_seen
        ev.posts,  # post_count
        m.late,  # late_posts
        LEVELS[ev.level],
        LEVELS[ev.previous],  # previous_level
        ev.rising,
        grade if grade is not None else grade_of(g, ev),
        metrics,
        m.region_codes(),
        tuple([pid for _, pid in ev.reps]),  # representative_post_ids
        ev.version,
    )
