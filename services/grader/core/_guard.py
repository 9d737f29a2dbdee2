"""Which rules above an event's level cannot hold yet: how a re-grade after a post skips them.

After a post the engine evaluates the policy again, most severe level first. For an event at blue that walked red,
orange and yellow (a dozen checks) only to find them failing as before, then blue itself (whose checks it must read
anyway: the grade's reasons carry their values). With parents kept every post of a large event paid that.

A rule fails while the checks that made it fail still fail (its failed `require`, or one more failing criterion than
it can spare). Each such check is a lower bound (`>=`, `>`) on a metric that a post can raise by at most a known
amount: a window's posts and distinct authors (or sources, platforms) by one, its media accounts by one per post
from a media account, its reposts / comments / likes by the post's own counts, its top-author reach by the
follower count of the post's author (as the event knows it), offline counts by the post's signals, its regional
scope only with a post naming regions; bucket moves and time only lower them (a window's mean relevance excepted:
it can rise as weak posts leave, so only the lifetime window's relevance is bounded, by "no post with evidence and
no earlier source post"). So while the lifetime sums of what was added since (`Guard`) stay below each failing
check's distance to its threshold, every rule above stays failed and the walk starts at the event's own level: the
same result as the full walk. A failing check of any other kind (acceleration, an upper bound, a sliding window's
relevance) gives no guard. `test_guard.py` checks it against the full walk on random histories.

The rising projection is not guarded: its factors make the same bounds loose (a factor up to 3-5 on the policy's
windows, unbounded on the 10-minute one), and a guard of it, tried, cost more instructions than it saved.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping

from ._windows import Window
from .grading import CompiledPolicy, Fired, _Check
from .metrics import EventMetrics

__all__ = ["NO_LIMIT", "Guard", "build_guard", "guard_holds"]

_INF = math.inf
# Room left under a threshold is taken this much smaller: float rounding.
_MARGIN = 1e-6
_BY_POSTS = frozenset({"posts", "distinct_authors", "sources", "platforms"})  # one more at most per post


class Guard:
    """How far the lifetime sums may grow, from where they stood when the rules above were last walked, before one
    of those rules could hold: for each sum the smallest value at which a failing check might pass (`NO_LIMIT`: no
    failing check depends on it).

    Integer ceilings rather than the sums and their float room: every sum here counts posts or adds their integer
    counts (PostView's), and for an integer rise n and room r, n < r exactly when n < ceil(r). So `guard_holds`
    compares two ints per sum (CPython's fast path) instead of subtracting and comparing an int with a float (its
    generic path, ten times on every re-grade of an event with a guard)."""

    __slots__ = (
        "comments", "cp", "evidence", "first_ts", "likes", "media", "offline", "posts", "reach", "regions", "reposts",
        "start",
    )  # fmt: skip

    def __init__(self, cp: CompiledPolicy, m: EventMetrics, start: int) -> None:
        self.cp = cp
        self.start = start  # index in cp.rules of the first rule not known to fail
        self.first_ts = m.first_ts
        self.posts = self.reposts = self.comments = self.likes = self.media = NO_LIMIT
        self.offline = self.evidence = self.regions = self.reach = NO_LIMIT

    def bound(self, metric: str, window: str, gap: float, hours: float, m: EventMetrics) -> bool:
        """Keep the check on `metric` over `window` failing while it rises by less than `gap` (> 0, in its own
        units) from `m`'s sums now; False when no sum bounds that metric."""
        if gap <= 0:
            return False
        t = m.total
        if metric in _BY_POSTS:
            self.posts = _lower(self.posts, t.posts, gap)
        elif metric == "velocity":  # posts / hours, and a window's hours never shrink
            self.posts = _lower(self.posts, t.posts, gap * hours - _MARGIN)
        elif metric == "reposts":
            self.reposts = _lower(self.reposts, t.reposts, gap)
        elif metric == "comments":
            self.comments = _lower(self.comments, t.comments, gap)
        elif metric == "likes":
            self.likes = _lower(self.likes, t.likes, gap)
        elif metric == "top_author_reach":
            self.reach = _lower(self.reach, m.reach_added, gap)
        elif metric == "media_involved":
            self.media = _lower(self.media, m.media_posts, gap)
        elif metric == "offline_posts":
            self.offline = _lower(self.offline, t.offline_posts + t.planned_posts, gap)
        elif metric == "offline_risk":  # rises with any offline or planned signal
            self.offline = _lower(self.offline, t.offline_posts + t.planned_posts, 1.0)
        elif metric == "regional_scope":  # rises only with a post naming regions
            self.regions = m.region_posts + 1
        elif metric == "relevance" and window == "total":  # a post with evidence, or an earlier source post
            self.evidence = t.relevance_posts + 1
        else:
            return False
        return True


# "No limit": no sum of counts gets near it; one that did would only make the guard give way to a full walk.
NO_LIMIT = 1 << 62


def _lower(ceiling: int, now: int, room: float) -> int:
    """The ceiling a sum at `now` may not reach while it rises by less than `room`, if lower than `ceiling`: the
    same as min(lim, room) on the rise, as integers (room inf or nan bounded nothing then either)."""
    if room < _INF:
        at = now + math.ceil(room)
        if at < ceiling:
            return at
    return ceiling


def guard_holds(g: Guard, cp: CompiledPolicy, m: EventMetrics) -> bool:
    """Whether the rules the guard covers still fail: nothing added since reached a failing check's threshold."""
    t = m.total
    return (
        g.cp is cp
        and t.posts < g.posts
        and t.reposts < g.reposts
        and t.comments < g.comments
        and t.likes < g.likes
        and m.reach_added < g.reach
        and m.media_posts < g.media
        and t.offline_posts + t.planned_posts < g.offline
        and t.relevance_posts < g.evidence
        and m.region_posts < g.regions
        and m.first_ts == g.first_ts
    )


def _gap(check: _Check, value: float) -> float:
    op = check[2]
    if op is not operator.ge and op is not operator.gt:
        return -_INF  # an upper bound: a post may make it hold
    return check[3] - value - _MARGIN


def build_guard(
    cp: CompiledPolicy, m: EventMetrics, windows: Mapping[str, Window], raw: int, misses: Fired
) -> Guard | None:
    """The guard of a full walk that settled at rank `raw` (0: none) and missed `misses` (what rank_live collected:
    the checks that failed each rule above it); None when there is nothing above or a miss cannot be bounded."""
    start = 0
    for rule in cp.rules:
        if rule.rank <= raw:
            break
        start += 1
    if not start:
        return None
    g = Guard(cp, m, start)
    for check, value in misses or ():
        window = check[1]
        if not g.bound(check[0], window, _gap(check, value), windows[window].hours, m):
            return None
    return g
