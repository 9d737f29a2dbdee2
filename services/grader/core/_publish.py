"""What the grader says about an event: its grade with the reasons (cool-down and override notes included), and
its snapshot (Grader._grade/_flush/event). Built from the engine's state; nothing here changes a level."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from ._cluster import keywords_due
from ._record import EventRecord
from .grading import reasons_for
from .model import LEVELS, EventSnapshot, Grade, Override, Reason, WindowMetrics

if TYPE_CHECKING:
    from .engine import Grader

__all__ = ["grade_of", "snapshot_of"]

# A frozen dataclass's __init__ sets each field through object.__setattr__, a call per field; so did the slots' own
# setters used here before (each a C call through a method wrapper). A grade and a snapshot are built per post, so they
# are filled as a *draft*: a plain class with exactly their slots, whose fields are set by ordinary (specialised)
# attribute stores, then turned into the frozen class by assigning __class__ (CPython allows it between classes of
# the same slots layout). The result is the same object as the frozen class's own constructor makes (its type,
# equality, repr, hash, immutability): about a sixth of the setters' cost.
_bare = object.__new__
_second = itemgetter(1)


class _GradeDraft:
    """Grade's slots, writable (see above)."""

    __slots__ = Grade.__slots__
    level: str
    label: str
    scheme: str
    policy_version: str
    reasons: tuple[Reason, ...]
    graded_at: datetime
    policy_level: str
    rising: bool
    override: Override | None
    hold_until: datetime | None


class _SnapshotDraft:
    """EventSnapshot's slots, writable (see above)."""

    __slots__ = EventSnapshot.__slots__
    event_id: str
    title: str
    keywords: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    post_count: int
    late_posts: int
    level: str
    previous_level: str
    rising: bool
    grade: Grade
    metrics: tuple[WindowMetrics, ...]
    region_codes: tuple[str, ...]
    representative_post_ids: tuple[str, ...]
    version: int
    merged_into: str | None


# Every field set, none else: a field added to Grade or EventSnapshot must be added to its draft and set below.
assert [f.name for f in fields(Grade)] == list(Grade.__slots__) == list(_GradeDraft.__annotations__)
assert [f.name for f in fields(EventSnapshot)] == list(EventSnapshot.__slots__) == list(_SnapshotDraft.__annotations__)


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
    d = _bare(_GradeDraft)
    d.level = LEVELS[effective]
    d.label = labels[effective]
    d.scheme = p.scheme
    d.policy_version = p.version
    d.reasons = reasons
    d.graded_at = at
    d.policy_level = LEVELS[raw]
    d.rising = rising
    d.override = o
    d.hold_until = hold_until
    d.__class__ = Grade  # type: ignore[assignment]  # the draft becomes the frozen Grade
    grade: Grade = d  # type: ignore[assignment]
    ev.grade = grade
    return grade


def snapshot_of(g: Grader, ev: EventRecord, metrics: tuple[WindowMetrics, ...]) -> EventSnapshot:
    """The event as published, with the given window records; title and keywords refreshed from its cluster."""
    cluster = g.clusterer.clusters.get(ev.id)
    if cluster is not None:
        ev.title = cluster.title
        # Clusterer.keywords only when its refresh is due: otherwise it would return the keywords the cluster holds.
        ev.keywords = g.clusterer.keywords(ev.id) if keywords_due(cluster) else cluster.keywords
    m = ev.metrics
    regions = m.regions  # m.region_codes() without its call while the regions are unchanged (most snapshots)
    grade = ev.grade
    d = _bare(_SnapshotDraft)
    d.event_id = ev.id
    d.title = ev.title
    d.keywords = ev.keywords
    d.first_seen = ev.first_at
    d.last_seen = ev.last_at
    d.post_count = ev.posts
    d.late_posts = m.late
    d.level = LEVELS[ev.level]
    d.previous_level = LEVELS[ev.previous]
    d.rising = ev.rising
    d.grade = grade if grade is not None else grade_of(g, ev)
    d.metrics = metrics
    d.region_codes = regions if regions is not None else m.region_codes()
    d.representative_post_ids = tuple(map(_second, ev.reps))  # the post ids, without a comprehension's call
    d.version = ev.version
    d.merged_into = None
    d.__class__ = EventSnapshot  # type: ignore[assignment]  # the draft becomes the frozen EventSnapshot
    snap: EventSnapshot = d  # type: ignore[assignment]
    return snap
