"""What the grader says about an event: its grade with the reasons (cool-down and override notes included), and
its snapshot (Grader._grade/_flush/event). Built from the engine's state; nothing here changes a level."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from ._record import EventRecord
from .grading import reasons_for
from .model import LEVELS, EventSnapshot, Grade, Reason, WindowMetrics

if TYPE_CHECKING:
    from .engine import Grader

__all__ = ["grade_of", "snapshot_of"]

# A frozen dataclass's __init__ sets each field through object.__setattr__ (a generic attribute lookup and a call per
# field). A grade and a snapshot are built per post, so they are built here from a bare instance through their slots'
# own setters, in field order: the same objects (equal, same repr, still frozen), at about half the cost.
_bare = object.__new__
_second = itemgetter(1)
_GRADE_SETTERS = tuple(getattr(Grade, f.name).__set__ for f in fields(Grade))
_SNAPSHOT_SETTERS = tuple(getattr(EventSnapshot, f.name).__set__ for f in fields(EventSnapshot))


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
    grade = ev.grade = _bare(Grade)
    level, label, scheme, version, reasons_, graded_at, policy_level, rising_, override, hold = _GRADE_SETTERS
    level(grade, LEVELS[effective])
    label(grade, labels[effective])
    scheme(grade, p.scheme)
    version(grade, p.version)
    reasons_(grade, reasons)
    graded_at(grade, at)
    policy_level(grade, LEVELS[raw])
    rising_(grade, rising)
    override(grade, o)
    hold(grade, hold_until)
    return grade


def snapshot_of(g: Grader, ev: EventRecord, metrics: tuple[WindowMetrics, ...]) -> EventSnapshot:
    """The event as published, with the given window records; title and keywords refreshed from its cluster."""
    cluster = g.clusterer.clusters.get(ev.id)
    if cluster is not None:
        ev.title = cluster.title
        ev.keywords = g.clusterer.keywords(ev.id)
    m = ev.metrics
    grade = ev.grade
    snap = _bare(EventSnapshot)
    (event_id, title, keywords, first_seen, last_seen, post_count, late_posts, level, previous_level, rising, grade_,
     metrics_, region_codes, representative_post_ids, version, merged_into) = _SNAPSHOT_SETTERS  # fmt: skip
    event_id(snap, ev.id)
    title(snap, ev.title)
    keywords(snap, ev.keywords)
    first_seen(snap, ev.first_at)
    last_seen(snap, ev.last_at)
    post_count(snap, ev.posts)
    late_posts(snap, m.late)
    level(snap, LEVELS[ev.level])
    previous_level(snap, LEVELS[ev.previous])
    rising(snap, ev.rising)
    grade_(snap, grade if grade is not None else grade_of(g, ev))
    metrics_(snap, metrics)
    region_codes(snap, m.region_codes())
    representative_post_ids(snap, tuple(map(_second, ev.reps)))  # the post ids, without a comprehension's call
    version(snap, ev.version)
    merged_into(snap, None)
    return snap
