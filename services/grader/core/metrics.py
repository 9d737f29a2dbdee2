"""Windowed counters per event, in event time.

Posts are added to fixed buckets (one minute by default) that every window shares; each window keeps
running counts and drops whole buckets as its end moves, so adding a post costs O(windows) and never
walks a per-post list. Windows move only with the grader's clock (the largest post time seen), so a
replay of last month gives exactly the metrics the live stream gave. A post older than the
watermark (clock minus the policy's lateness) only counts in the "total" window and in `late`.

Window state is derived: it can be rebuilt from the retained buckets at any clock value, which is
how a restored or merged event and a policy with other windows get their windows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ._windows import (
    _NO_BUCKETS,
    OFFLINE_RISK_HALF,
    Bucket,
    Contribution,
    Window,
    add_post,
    insert_sorted,
    regional_scope,
)
from .model import WindowMetrics

__all__ = ["OFFLINE_RISK_HALF", "Contribution", "EventMetrics", "Window", "regional_scope"]

_INF = math.inf
# Seconds before a bucket's due time at which advance() looks anyway (see EventMetrics._next_due).
_MARGIN = 1.0


class EventMetrics:
    """All the windowed counters of one event. Times are epoch seconds of event time."""

    __slots__ = (
        "bucket_seconds", "buckets", "by_name", "due", "first_ts", "followers", "late", "media_posts", "now", "order",
        "reach_added", "region_posts", "regions", "retention", "shortest", "total", "windows",
    )  # fmt: skip

    def __init__(
        self,
        windows: Sequence[tuple[str, float]],
        top_k: int,
        bucket_seconds: float = 60.0,
        retention_seconds: float = 2 * 86400.0,
    ) -> None:
        self.bucket_seconds = bucket_seconds
        # Buckets are kept for two lengths of the longest window, so acceleration can see the window before.
        self.retention = max(retention_seconds, 2 * max((s for _, s in windows), default=0.0))
        self.followers: dict[str, int] = {}
        self.windows = [Window(name, seconds, top_k, self.followers) for name, seconds in windows]
        self.total = Window("total", _INF, top_k, self.followers)
        self.by_name: dict[str, Window] = {}
        self._name_windows()
        self.buckets: dict[float, Bucket] = {}
        self.order: deque[Bucket] = deque()
        self.late = 0
        self.first_ts = _INF
        self.now = -_INF
        # A clock value before which advance() has no bucket to move (see _next_due); -inf: look.
        self.due = _INF
        # region_codes() as last sorted, None once a post with regions (or a merge) changed them: every snapshot
        # reads it and the regions change with a handful of posts.
        self.regions: tuple[str, ...] | None = None
        # Sums over the posts added (never lowered, not stored): how far a window's top-author reach, regional
        # scope and media count could have risen since some earlier moment (_guard). reach_added adds each post's
        # author's follower count as the event knows it (the largest seen): what the author can add to a top-k list.
        self.reach_added = 0
        self.region_posts = 0
        self.media_posts = 0

    def _name_windows(self) -> None:
        self.by_name = {w.name: w for w in self.windows}
        self.by_name["total"] = self.total
        self.shortest = min((w.seconds for w in self.windows), default=_INF)

    def add(self, c: Contribution, ts: float, now: float, watermark: float) -> bool:
        """Count one post at event time `ts` with the clock at `now`; False when it was late."""
        if now != self.now:
            self.advance(now)
        if ts < self.first_ts:
            self.first_ts = ts
            self.total.source_relevance = c.relevance  # the earliest post is the event's source post
            self._age(now)
        if c.regions:
            self.regions = None
            self.region_posts += 1
        if c.media:
            self.media_posts += 1
        author = c.author
        followers = self.followers
        known = followers.get(author)
        if known is None or c.followers > known:
            f = followers[author] = c.followers
            if known is not None:  # a bigger follower count changes the order of the top-k lists
                for w in (*self.windows, self.total):
                    w.top_valid = False
        else:
            f = known
        self.reach_added += f
        # note_author only when the author can enter the top-k list (a call per window per post otherwise).
        total = self.total
        if ts < watermark:  # only the lifetime window counts it
            if total.add(c) and total.top_valid and (len(total.top) < total.top_k or f > total.top[0][0]):
                total.note_author(author, f)
            self.late += 1
            return False
        bs = self.bucket_seconds
        start = ts - ts % bs
        bucket = self.buckets.get(start)
        if bucket is None:
            bucket = self.buckets[start] = Bucket(start, bs)
            insert_sorted(self.order, bucket)
            end = bucket.end
            due = end + self.retention
            for w in self.windows:
                seconds = w.seconds
                if end > now - seconds:
                    insert_sorted(w.dq, bucket)
                    leaves = end + seconds
                elif end > now - 2 * seconds:
                    if w.prev is _NO_BUCKETS:  # shared and always empty until a bucket moves in (see Window)
                        w.prev = deque()
                    insert_sorted(w.prev, bucket)
                    leaves = end + 2 * seconds
                else:
                    continue
                if leaves < due:
                    due = leaves
            if due - _MARGIN < self.due:  # the new bucket may be the first to move (see _next_due)
                self.due = due - _MARGIN
        end = bucket.end
        if end > now - self.shortest:  # in the shortest window, so in each (now - seconds is monotone in seconds)
            into: Collection[Window] = self.by_name.values()  # every window and "total" (the order counts for nothing)
        else:
            into = [total]  # the windows the post falls in
            for w in self.windows:
                if end > now - w.seconds:
                    into.append(w)
                elif end > now - 2 * w.seconds:
                    w.prev_posts += 1
        add_post(c, f, bucket, into)
        return True

    def advance(self, now: float) -> None:
        """Move every window's end to `now`, dropping the buckets that fell out."""
        if now == self.now:
            return
        self.now = now
        if now < self.due:  # no bucket leaves any window yet: only the lifetime window's age moves (_age inlined)
            first_ts = self.first_ts
            age = now - first_ts if first_ts != _INF else 0.0
            bs = self.bucket_seconds
            self.total.hours = (bs if bs > age else age) / 3600.0
            return
        for w in self.windows:
            cut = now - w.seconds
            dq = w.dq
            while dq and dq[0].end <= cut:
                bucket = dq.popleft()
                w.drop(bucket)
                if w.prev is _NO_BUCKETS:  # shared and always empty until a bucket moves in (see Window)
                    w.prev = deque()
                w.prev.append(bucket)
                w.prev_posts += bucket.posts
            cut -= w.seconds
            prev = w.prev
            while prev and prev[0].end <= cut:
                w.prev_posts -= prev.popleft().posts
        cut = now - self.retention
        order = self.order
        while order and order[0].end <= cut:
            del self.buckets[order.popleft().start]
        self.due = self._next_due()
        self._age(now)

    def _next_due(self) -> float:
        """A clock value before which advance() moves no bucket: the earliest time a window's first bucket leaves it,
        the window before it, or the retention, less a margin (advance compares `end <= now - seconds`, which
        rounding may make true a hair before `now == end + seconds`; times are epoch seconds, far from 2**53)."""
        due = self.order[0].end + self.retention if self.order else _INF
        for w in self.windows:
            if w.dq:
                at = w.dq[0].end + w.seconds
                if at < due:
                    due = at
            if w.prev:
                at = w.prev[0].end + 2 * w.seconds
                if at < due:
                    due = at
        return due - _MARGIN

    def _age(self, now: float) -> None:
        # The lifetime window's velocity is posts per hour of the event's age (at least one bucket).
        age = now - self.first_ts if self.first_ts != _INF else 0.0
        bs = self.bucket_seconds
        self.total.hours = (bs if bs > age else age) / 3600.0  # max(age, bs) without the call

    def live(self, now: float) -> Mapping[str, Window]:
        """The windows by name (with "total"), advanced to `now`, readable like WindowMetrics."""
        self.advance(now)
        return self.by_name

    def next_change(self, names: Collection[str] | None = None) -> float:
        """The next event time at which a bucket leaves one of the named sliding windows (all by default);
        inf when they are empty."""
        due = _INF  # a loop rather than min() over a generator: asked after most posts
        for w in self.windows:
            if w.dq and (names is None or w.name in names):
                at = w.dq[0].end + w.seconds
                if at < due:
                    due = at
        return due

    def view(self, at: datetime, now: float | None = None) -> dict[str, WindowMetrics]:
        """Records of every window (shortest first, then "total"), at `now` or where the windows stand."""
        if now is not None:
            self.advance(now)
        return dict(zip(self.by_name, _records(self.by_name.values(), at), strict=True))

    def records(self, at: datetime) -> tuple[WindowMetrics, ...]:
        """The records of view(at) as a tuple, as a snapshot holds them (built for every snapshot, per post)."""
        return tuple(_records(self.by_name.values(), at))

    def region_codes(self) -> tuple[str, ...]:
        """Every region code seen, most specific first, then most mentioned."""
        regions = self.regions
        if regions is None:
            codes = self.total.by_region
            regions = self.regions = tuple(
                sorted(codes, key=lambda c: (c.endswith("0000"), c.endswith("00"), -codes[c], c))
            )
        return regions

    def reconfigure(self, windows: Sequence[tuple[str, float]], top_k: int, now: float) -> None:
        """Switch to other windows (a new policy): rebuild them from the retained buckets."""
        self.retention = max(self.retention, 2 * max((s for _, s in windows), default=0.0))
        self.windows = [Window(name, seconds, top_k, self.followers) for name, seconds in windows]
        self.total.top_k, self.total.top_valid = top_k, False
        self._rebuild(now)

    def merge(self, other: EventMetrics, now: float) -> None:
        """Absorb another event's counters (event merge)."""
        for bucket in other.order:
            mine = self.buckets.get(bucket.start)
            if mine is None:
                mine = self.buckets[bucket.start] = Bucket(bucket.start, self.bucket_seconds)
                insert_sorted(self.order, mine)
            mine.absorb(bucket)
        self.total.absorb(other.total)
        self.total.top_valid = False
        self.regions = None
        if other.first_ts < self.first_ts:  # the older event's source post is the merged event's
            self.total.source_relevance = other.total.source_relevance
        for author, f in other.followers.items():
            if f > self.followers.get(author, -1):
                self.followers[author] = f
        self.late += other.late
        self.first_ts = min(self.first_ts, other.first_ts)
        self._rebuild(now)

    def _rebuild(self, now: float) -> None:
        for i, w in enumerate(self.windows):
            fresh = self.windows[i] = Window(w.name, w.seconds, w.top_k, self.followers)
            fresh.top_valid = False
            for bucket in self.order:
                if bucket.end > now - w.seconds:
                    fresh.dq.append(bucket)
                    fresh.absorb(bucket)
                elif bucket.end > now - 2 * w.seconds:
                    if fresh.prev is _NO_BUCKETS:
                        fresh.prev = deque()
                    fresh.prev.append(bucket)
                    fresh.prev_posts += bucket.posts
        self._name_windows()
        self.now = -_INF
        self.due = -_INF
        self.advance(now)

    def to_dict(self) -> dict[str, Any]:
        """Plain data; windows are not stored since from_dict rebuilds them."""
        return {
            "buckets": [[b.start, *b.to_list()] for b in self.order],
            "total": self.total.to_list(),
            "followers": self.followers,
            "late": self.late,
            "first_ts": None if self.first_ts == _INF else self.first_ts,
            "now": None if self.now == -_INF else self.now,
            "source_relevance": self.total.source_relevance,
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        windows: Sequence[tuple[str, float]],
        top_k: int,
        now: float | None = None,
        bucket_seconds: float = 60.0,
        retention_seconds: float = 2 * 86400.0,
    ) -> EventMetrics:
        """Inverse of to_dict, with the windows rebuilt where they stood (or at clock `now`)."""
        m = cls(windows, top_k, bucket_seconds, retention_seconds)
        for row in data["buckets"]:
            bucket = Bucket(row[0], bucket_seconds)
            bucket.load(row[1:])
            m.buckets[bucket.start] = bucket
            m.order.append(bucket)
        m.total.load(data["total"])
        m.total.top_valid = False
        m.total.source_relevance = data.get("source_relevance", 0)  # absent from states of before: the mean alone
        m.followers.update(data["followers"])
        m.late = data["late"]
        m.first_ts = _INF if data["first_ts"] is None else data["first_ts"]
        if now is None:
            now = -_INF if data["now"] is None else data["now"]
        m._rebuild(now)
        return m


_new_record = tuple.__new__  # WindowMetrics(...) without its generated __new__: 4 records per snapshot, per post


def _records(windows: Iterable[Window], at: datetime) -> list[WindowMetrics]:
    """The records of the windows at `at`: the Window properties inlined (same formulas as in _windows.Window), in
    one loop rather than a call per window (four records per snapshot, per post)."""
    out: list[WindowMetrics] = []
    append = out.append
    for w in windows:
        posts, hours, seconds = w.posts, w.hours, w.seconds
        scope = w.scope
        if scope < 0:
            scope = w.regional_scope
        # Offline risk and relevance with their zero cases apart (most windows: no offline signal, no post with
        # evidence): the same values without int/float arithmetic, CPython's slow path. 0 / (0 + H) is 0.0, and
        # max(source, 0.0) / 1000 is source / 1000 for a positive source, else 0.0.
        offline = w.offline_posts + w.planned_posts
        risk = offline / (offline + OFFLINE_RISK_HALF) if offline else 0.0
        evidence = w.relevance_posts
        source = w.source_relevance
        if evidence:
            mean = w.relevance_sum / evidence
            relevance = (source if source > mean else mean) / 1000.0  # max(), the first wins ties
        else:
            relevance = source / 1000.0 if source > 0 else 0.0
        append(
            _new_record(
                WindowMetrics,
                (
                    w.name,
                    seconds,
                    at,
                    posts,
                    w.reposts,
                    w.comments,
                    w.likes,
                    len(w.by_author),
                    posts / hours,  # velocity
                    0.0 if seconds == _INF else (posts - w.prev_posts) / hours / hours,  # acceleration
                    w.top_author_reach if not w.top_valid else w.top_total,
                    len(w.by_source),
                    len(w.by_platform),
                    len(w.by_media),
                    scope,
                    w.offline_posts,
                    risk,
                    relevance,
                ),
            )
        )
    return out
