"""The grader as one pure object: posts in, event snapshots and alerts out, in event time.

The clock is the largest post time seen (or a later `tick(now)`), never the wall clock, so a replay
grades exactly as the live stream did. Each event whose grade time alone can change is scheduled for a
timed re-grade at the event time it could change (a bucket leaving a window, a cool-down or an
override ending); moving the clock runs those re-grades in time order at their own times, so a quiet
event de-escalates at the same moment whether the next post comes a second or a day later.

Every call returns its alerts as they happen, then one snapshot per event that changed (the latest),
so a batch of posts yields one snapshot per event, as a compacted topic wants. Alerts are numbered
1, 2, … per event: (event_id, sequence) identifies one. `snapshot()` returns the whole state as
JSON-able data; `Grader.restore()` continues from it exactly.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from . import _commands, _persist
from ._cooldown import step
from ._guard import build_guard, guard_holds
from ._horizon import hold_until
from ._projection import projected_rank
from ._publish import grade_of, snapshot_of
from ._record import STATE_FORMAT, EventRecord
from .clustering import Clusterer, ClusteringConfig
from .grading import CompiledPolicy, Fired, compile_policy, explain, rank_live, rank_of
from .metrics import Contribution, EventMetrics
from .model import (
    LEVEL_RANK,
    LEVELS,
    Alert,
    DryRunRow,
    EventSnapshot,
    Explanation,
    Grade,
    Output,
    PostView,
)
from .policy import Policy

__all__ = ["STATE_FORMAT", "Grader", "GraderConfig"]

_new_contribution = tuple.__new__  # Contribution(...) without its generated __new__ (see _contribution)


@dataclass(frozen=True, slots=True)
class GraderConfig:
    """Settings of the engine that are not grading policy."""

    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    # Source kinds (qingfeng.v1.SourceKind names, lower case) that count as traditional media.
    media_source_kinds: frozenset[str] = frozenset({"rss"})
    bucket_seconds: float = 60.0
    retention_seconds: float = 2 * 86400.0
    # Re-grading period of events that time alone may change but no bucket move announces
    # (non-monotone policies), and of rising events (whose flag may drop as the growth fades).
    tick_seconds: float = 60.0
    rising_recheck_seconds: float = 300.0
    representative_posts: int = 3


class Grader:
    """Online event detection and grading. Not thread-safe: one owner feeds it in order."""

    def __init__(self, policy: Policy, config: GraderConfig | None = None) -> None:
        self.config = config or GraderConfig()
        self.clusterer = Clusterer(self.config.clustering)
        self.events: dict[str, EventRecord] = {}
        # Events whose grade can change with time alone, with when (see _due), in scheduling order; the
        # heap holds (due, order, id) and may hold stale entries, skipped when they disagree with `live`.
        self.live: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._order = 0
        self.clock = -math.inf
        self.clock_at: datetime | None = None
        self.next_expiry = -math.inf
        self._use(policy)
        self.state_policy_version = policy.version  # the policy the current grades came from

    def _use(self, policy: Policy) -> None:
        self.cp: CompiledPolicy = compile_policy(policy)
        self.labels = [policy.label_for(level) for level in LEVELS]
        # Read on every post: kept as plain attributes rather than looked up through the policy each time.
        self._lateness = policy.lateness_seconds
        self._cooldown = policy.cooldown_seconds

    @property
    def policy(self) -> Policy:
        return self.cp.policy

    # -- the stream --------------------------------------------------------------------------------

    def process(self, post: PostView) -> list[Output]:
        """Take one post: assign it to an event, update its metrics and grade; return what changed."""
        out: list[Output] = []
        dirty: dict[str, None] = {}
        self._take(post, out, dirty)
        for eid in dirty:  # _flush inlined: one call less per post (the one-post-per-call path)
            ev = self.events.get(eid)
            if ev is not None:
                ev.version += 1
                grade = ev.grade if ev.grade is not None else grade_of(self, ev)
                out.append(snapshot_of(self, ev, ev.metrics.records(grade.graded_at)))
        return out

    def process_batch(self, posts: Iterable[PostView]) -> list[Output]:
        """Take posts in order; alerts as they happen, then the latest snapshot of each changed event."""
        out: list[Output] = []
        dirty: dict[str, None] = {}
        for post in posts:
            self._take(post, out, dirty)
        self._flush(out, dirty)
        return out

    def _take(self, post: PostView, out: list[Output], dirty: dict[str, None]) -> None:
        clusterer = self.clusterer
        if clusterer.seen(post.id):
            return  # redelivered: counting it twice would inflate the metrics
        at = post.created_at
        if at.tzinfo is None:
            raise ValueError(f"post {post.id}: created_at must be timezone-aware (it is the event time)")
        ts = at.timestamp()
        if ts > self.clock:
            self._advance(ts, at, out, dirty)
        assignment = clusterer.assign(post, ts)
        eid = assignment.event_id
        if not eid:
            return  # no event had evidence for it (no usable words, no parent): it moves no event's level
        ev = self.events.get(eid)
        if ev is None:
            ev = self._new_event(eid, at)
        for gone in assignment.absorbed:
            self._absorb(ev, gone, out, dirty)
        clock = self.clock
        ev.metrics.add(self._contribution(post), ts, clock, clock - self._lateness)
        ev.posts += 1
        if ts > ev.last_ts:
            ev.last_ts, ev.last_at = ts, at
        if at < ev.first_at:
            ev.first_at = at
        reps = ev.reps
        if len(reps) < self.config.representative_posts or post.author_followers > reps[-1][0]:
            self._note_representative(ev, post)
        self._regrade(ev, out, dirty, emit=True)

    def tick(self, now: datetime) -> list[Output]:
        """Advance event time to `now` (if later), grading every event that time alone changes.

        Pass the stream's event time (e.g. the consumer's watermark), not the wall clock, to keep
        replays identical to live runs.
        """
        if self.clock_at is None:
            return []
        out: list[Output] = []
        dirty: dict[str, None] = {}
        self._advance(now.timestamp(), now, out, dirty)
        self._flush(out, dirty)
        return out

    def _advance(self, ts: float, at: datetime, out: list[Output], dirty: dict[str, None]) -> None:
        """Move the clock to `ts`, first re-grading, at its own due time and in time order, every event
        whose grade time alone can change before then: how a quiet event cools down and de-escalates at
        the same event time whether the next post comes a second or a day later."""
        heap, live = self._heap, self.live
        while heap and heap[0][0] <= ts:
            due, _, eid = heapq.heappop(heap)
            if live.get(eid) != due:
                continue  # rescheduled or dropped since
            del live[eid]
            if due > self.clock:
                self.clock, self.clock_at = due, datetime.fromtimestamp(due, tz=at.tzinfo)
            self._regrade(self.events[eid], out, dirty, emit=False)
        if ts > self.clock:
            self.clock, self.clock_at = ts, at
        if self.clock >= self.next_expiry:  # idle events leave memory, at most an eighth of the horizon late
            # (hourly before, whatever the horizon: a 120 s horizon kept every event of a 10-minute soak)
            self.next_expiry = self.clock + min(3600.0, self.clusterer.config.horizon_seconds / 8)
            for eid in self.clusterer.expire(self.clock):
                self.events.pop(eid, None)
                live.pop(eid, None)
                dirty.pop(eid, None)
            if len(heap) > 2 * len(live) + 1024:  # stale entries (rescheduled, expired) would wait for their due time
                self._heap = heap = [entry for entry in heap if live.get(entry[2]) == entry[0]]
                heapq.heapify(heap)

    def _schedule(self, eid: str, due: float) -> None:
        if due <= self.clock:  # cannot happen (every due time is ahead); never let _advance spin on it
            due = self.clock + self.config.tick_seconds
        if self.live.get(eid) == due:
            return
        self.live.pop(eid, None)
        if due < math.inf:
            self.live[eid] = due
            self._order += 1
            heapq.heappush(self._heap, (due, self._order, eid))

    # -- analysts and policy -----------------------------------------------------------------------

    def override(
        self, event_id: str, level: str | None, reason: str, by: str, at: datetime, expires_at: datetime | None = None
    ) -> list[Output]:
        """Fix an event's level by hand (level None clears it). Raises KeyError/ValueError on bad input."""
        return _commands.override(self, event_id, level, reason, by, at, expires_at)

    def set_policy(self, policy: Policy) -> list[Output]:
        """Activate a new policy and regrade every event under it at once (no cool-down applies)."""
        return _commands.set_policy(self, policy)

    def dry_run(self, policy: Policy) -> list[DryRunRow]:
        """How `policy` would grade every current event now, without changing anything."""
        return _commands.dry_run(self, policy)

    # -- queries -----------------------------------------------------------------------------------

    def resolve(self, event_id: str) -> str | None:
        """The live event an id stands for now (after merges), or None."""
        return self.clusterer.resolve(event_id)

    def event(self, event_id: str) -> EventSnapshot | None:
        """The current snapshot of an event (following merges), at the clock."""
        eid = self.clusterer.resolve(event_id)
        if eid is None or self.clock_at is None:
            return None
        ev = self.events[eid]
        ev.metrics.advance(self.clock)
        return snapshot_of(self, ev, ev.metrics.records(self.clock_at))

    def snapshots(self) -> list[EventSnapshot]:
        """Every event in memory, most recently active first."""
        return [s for eid in reversed(self.clusterer.clusters) if (s := self.event(eid)) is not None]

    def explain(self, event_id: str) -> Explanation:
        """Every criterion of the active policy on an event, fired or not, at the clock."""
        ev = self._event(event_id)
        assert self.clock_at is not None
        metrics = ev.metrics.view(self.clock_at, self.clock)
        raw = rank_of(self.cp, metrics)[0]
        return Explanation(self._grade(ev), explain(self.cp, metrics), tuple(metrics.values()), LEVELS[raw])

    def _event(self, event_id: str) -> EventRecord:
        eid = self.clusterer.resolve(event_id)
        if eid is None:
            raise KeyError(f"no live event {event_id!r}")
        return self.events[eid]

    # -- internals ---------------------------------------------------------------------------------

    def _new_event(self, eid: str, at: datetime) -> EventRecord:
        p, cfg = self.policy, self.config
        metrics = EventMetrics(p.windows, p.top_authors, cfg.bucket_seconds, cfg.retention_seconds)
        ev = self.events[eid] = EventRecord(eid, metrics, at)
        return ev

    def _contribution(self, post: PostView) -> Contribution:
        offline = 1 if post.offline_signals else 0
        codes = post.region_codes
        # Built positionally without the NamedTuple's generated __new__ (once per post; fields in Contribution order).
        return _new_contribution(
            Contribution,
            (
                post.author_id or f"?{post.id}",  # author
                post.author_followers,
                post.reposts,
                post.comments,
                post.likes,
                offline,
                offline if post.offline_planned else 0,  # planned
                round(post.relevance * 1000) if post.relevance else 0,  # thousandths; most posts: no call
                post.author_is_media or post.source_kind in self.config.media_source_kinds,  # media
                post.source_kind,  # source
                post.platform,
                tuple(c for c in codes if len(c) == 6 and c.isdigit()) if codes else (),  # regions
            ),
        )

    def _note_representative(self, ev: EventRecord, post: PostView) -> None:
        reps, n = ev.reps, self.config.representative_posts
        if len(reps) < n or post.author_followers > reps[-1][0]:
            reps.append((post.author_followers, post.id))
            reps.sort(key=lambda r: -r[0])  # stable: earlier posts win ties
            del reps[n:]

    def _absorb(self, keep: EventRecord, gone_id: str, out: list[Output], dirty: dict[str, None]) -> None:
        gone = self.events.pop(gone_id)
        self._schedule(gone_id, math.inf)
        dirty.pop(gone_id, None)
        keep.metrics.merge(gone.metrics, self.clock)
        keep.guard = None  # the merged counters rose by more than any post
        keep.posts += gone.posts
        keep.first_at = min(keep.first_at, gone.first_at)
        if gone.last_ts > keep.last_ts:
            keep.last_ts, keep.last_at = gone.last_ts, gone.last_at
        keep.reps = sorted(keep.reps + gone.reps, key=lambda r: -r[0])[: self.config.representative_posts]
        keep.override = keep.override or gone.override
        gone.version += 1
        out.append(replace(snapshot_of(self, gone, ()), merged_into=keep.id))

    def _regrade(self, ev: EventRecord, out: list[Output], dirty: dict[str, None], emit: bool) -> None:
        """Evaluate the policy on the event at the clock; queue its snapshot, append an alert on a change."""
        cp, clock = self.cp, self.clock
        m = ev.metrics
        if m.now != clock:  # m.live(clock) without its two calls when the post just advanced the windows
            m.advance(clock)
        windows = m.by_name
        guard = ev.guard
        if guard is not None and guard_holds(guard, cp, m):  # the rules above its level still fail: start below
            # rank_live(cp, windows, start=guard.start) written out, without its call (on most re-grades): each rule
            # from the guard's start by its code without scale or misses, until one holds; rank 0 when none does.
            raw, fired = 0, None
            for rule in cp.rules_from[guard.start]:
                fired = rule.code[0](windows, None, None)
                if fired is not None:
                    raw = rule.rank
                    break
        else:
            misses: Fired = []
            raw, fired = rank_live(cp, windows, misses=misses)
            ev.guard = build_guard(cp, m, windows, raw, misses)
        before = ev.state
        if raw == before.rank and before.below_since is None:
            state = before  # step()'s first case, without its call: the level holds (most re-grades)
        else:
            ev.state = state = step(before, raw, clock, self._cooldown)
        o = ev.override
        if o is not None and o.expires_at and o.expires_at.timestamp() <= clock:
            ev.override = o = None
            emit = True
        effective = LEVEL_RANK[o.level] if o is not None else state.rank
        rising = False
        if effective < cp.top_rank:
            projected = projected_rank(cp, windows, effective, live=True)
            rising = projected is not None and projected > effective
        assert self.clock_at is not None
        ev.evaluation = (raw, fired, self.clock_at, rising, effective)
        ev.grade = None
        changed = effective != ev.level
        if emit or changed or rising != ev.rising or (before.below_since is None) != (state.below_since is None):
            dirty[ev.id] = None
        ev.rising = rising
        if changed:
            ev.previous, ev.level = ev.level, effective
            ev.sequence += 1
            grade = self._grade(ev)
            title = self.clusterer.title(ev.id)
            regions = ev.metrics.region_codes()
            out.append(Alert(ev.id, LEVELS[ev.previous], LEVELS[effective], grade.reasons, grade.graded_at,
                             ev.sequence, title, grade, regions))  # fmt: skip
        due = self._due(ev, rising, thorough=not emit)
        if self.live.get(ev.id) != due:  # _schedule's own first test (most re-grades keep their due time): its call
            self._schedule(ev.id, due)  # only for a change (a due time at or before the clock is never in `live`)

    def _grade(self, ev: EventRecord) -> Grade:
        """The event's grade at its last evaluation (built on demand: most are never looked at)."""
        return ev.grade if ev.grade is not None else grade_of(self, ev)

    def _due(self, ev: EventRecord, rising: bool, thorough: bool) -> float:
        """When time alone (no new post) could next change this event's grade; inf for never.

        Under a monotone policy a grade can only drop: the policy level only when buckets leave the
        windows its rule reads, and the grade when a cool-down (which no such drop can shorten) or an
        override ends. After a post the next bucket move is taken; on a timed re-grade (the event has
        gone quiet) the buckets are walked to find when the rule could first fail (see _horizon).
        Rising events are re-checked every `rising_recheck_seconds`, and under a non-monotone policy
        every event is re-graded every `tick_seconds` while its windows hold posts.
        """
        o = ev.override
        due = o.expires_at.timestamp() if o is not None and o.expires_at is not None else math.inf
        state = ev.state
        if state.below_since is not None:
            due = min(due, state.below_since + self._cooldown)
        if rising or not self.cp.monotone:
            if ev.metrics.next_change() == math.inf:
                return due
            # The rising flag is an early warning: re-checking it every few minutes is plenty.
            tick = self.config.tick_seconds if not self.cp.monotone else self.config.rising_recheck_seconds
            return min(due, (self.clock // tick + 1) * tick)
        windows = self.cp.decaying.get(state.rank)
        if windows and state.below_since is None:
            rule = self.cp.rule(state.rank)
            if thorough and rule is not None:  # walk the buckets: worth it once the event has gone quiet
                due = min(due, hold_until(rule, ev.metrics.live(self.clock)))
            else:
                due = min(due, ev.metrics.next_change(windows))
        return due

    def _flush(self, out: list[Output], dirty: dict[str, None]) -> None:
        for eid in dirty:
            ev = self.events.get(eid)
            if ev is not None:
                ev.version += 1
                grade = ev.grade if ev.grade is not None else grade_of(self, ev)  # _grade inlined: once per post
                out.append(snapshot_of(self, ev, ev.metrics.records(grade.graded_at)))

    # -- persistence -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (store it with the consumed offsets)."""
        return _persist.state_of(self)

    @classmethod
    def restore(cls, data: dict[str, Any], policy: Policy, config: GraderConfig | None = None) -> Grader:
        """Rebuild a grader from snapshot() output; it continues exactly where the snapshot was taken.

        Windows are rebuilt under `policy`. When `policy` is not the one the state was graded under
        (`state_policy_version` tells), the grades are kept as they were: call `set_policy(policy)`
        next and publish what it returns, so no level change goes unannounced.
        """
        g = cls(policy, config)
        _persist.load_state(g, data, policy)
        return g
