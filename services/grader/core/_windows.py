"""Counters over sets of posts: one-minute buckets, and sliding windows made of buckets.

A `_Window` exposes the metric names of `WindowMetrics` as attributes and properties, so the policy is
evaluated on it directly, without building a record per post.
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

__all__ = ["OFFLINE_RISK_HALF", "Bucket", "Contribution", "Window", "add_post", "insert_sorted", "regional_scope"]

# offline_risk = w / (w + OFFLINE_RISK_HALF), w = posts with offline signals + those with planned ones:
# five signalling posts make an even chance, and it saturates rather than growing with volume.
OFFLINE_RISK_HALF = 5.0
_NO_BUCKETS: deque[Bucket] = deque(maxlen=0)  # see Window.__init__
# Up to this many authors a window's top-k list is recomputed by sorting them all (cheaper than heapq.nlargest).
_SORT_ALL = 64


class Contribution(NamedTuple):
    """What one post adds to the counters (built once per post by the engine)."""

    author: str
    followers: int
    reposts: int
    comments: int
    likes: int
    offline: int
    planned: int
    relevance: int  # thousandths, so sums stay exact integers whatever order posts come and go; 0 = no evidence
    media: bool
    source: str
    platform: str
    regions: tuple[str, ...]


def regional_scope(codes: Iterable[str]) -> int:
    """0 unknown, 1 local (one prefecture), 2 provincial (several prefectures of one province, or
    the province itself), 3 national (several provinces), from GB/T 2260 codes."""
    codes = list(codes)
    if not codes:
        return 0
    if len({c[:2] for c in codes}) > 1:
        return 3
    if any(c.endswith("0000") for c in codes) or len({c[:4] for c in codes}) > 1:
        return 2
    return 1


class _Counts:
    """Sums and distinct-value counts over a set of posts."""

    __slots__ = (
        "by_author", "by_media", "by_platform", "by_region", "by_source", "comments", "likes",
        "offline_posts", "planned_posts", "posts", "relevance_posts", "relevance_sum", "reposts", "scope",
    )  # fmt: skip

    def __init__(self) -> None:
        self.posts = self.reposts = self.comments = self.likes = 0
        self.offline_posts = self.planned_posts = self.relevance_sum = 0
        self.relevance_posts = 0  # posts whose relevance score has evidence (> 0): what `relevance` averages
        self.by_author: dict[str, int] = {}
        self.by_media: dict[str, int] = {}
        self.by_source: dict[str, int] = {}
        self.by_platform: dict[str, int] = {}
        self.by_region: dict[str, int] = {}
        # regional_scope(by_region) while the set of regions is unchanged, -1 once it changed: read on every
        # snapshot of every window, it changes with a handful of posts.
        self.scope = 0

    def add(self, c: Contribution) -> bool:
        """Add one post; True when its author is new here."""
        # One unpacking instead of a field read per use: five sets (bucket, windows, lifetime) take every post.
        author, _, reposts, comments, likes, offline, planned, relevance, media, source, platform, codes = c
        self.posts += 1
        # Zero adds nothing: skipped (most posts carry no offline signal; counts zeroed, none of the three).
        if reposts:
            self.reposts += reposts
        if comments:
            self.comments += comments
        if likes:
            self.likes += likes
        if offline:  # planned is 0 without offline (Grader._contribution)
            self.offline_posts += offline
            self.planned_posts += planned
        elif planned:
            self.planned_posts += planned
        if relevance:
            self.relevance_sum += relevance
            self.relevance_posts += 1
        authors = self.by_author
        n = authors.get(author, 0)
        authors[author] = n + 1
        if media:
            self.by_media[author] = self.by_media.get(author, 0) + 1
        if source:
            self.by_source[source] = self.by_source.get(source, 0) + 1
        if platform:
            self.by_platform[platform] = self.by_platform.get(platform, 0) + 1
        if codes:
            regions = self.by_region
            for code in codes:
                had = regions.get(code, 0)
                regions[code] = had + 1
                if not had:
                    self.scope = -1
        return n == 0

    def absorb(self, other: _Counts) -> None:
        """Add another set's counts (bucket merge, window rebuild)."""
        self.posts += other.posts
        self.reposts += other.reposts
        self.comments += other.comments
        self.likes += other.likes
        self.offline_posts += other.offline_posts
        self.planned_posts += other.planned_posts
        self.relevance_sum += other.relevance_sum
        self.relevance_posts += other.relevance_posts
        if other.by_region:
            self.scope = -1
        for mine, theirs in self._maps(other):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n

    def remove(self, other: _Counts) -> list[str]:
        """Subtract a bucket's counts; returns the authors that left."""
        self.posts -= other.posts
        # Zero takes nothing away: skipped (as in add).
        if other.reposts:
            self.reposts -= other.reposts
        if other.comments:
            self.comments -= other.comments
        if other.likes:
            self.likes -= other.likes
        if other.offline_posts or other.planned_posts:
            self.offline_posts -= other.offline_posts
            self.planned_posts -= other.planned_posts
        if other.relevance_posts:  # relevance_sum is 0 without posts with evidence
            self.relevance_sum -= other.relevance_sum
            self.relevance_posts -= other.relevance_posts
        if other.by_region:
            self.scope = -1
        gone: list[str] = []
        mine = self.by_author
        for key, n in other.by_author.items():
            left = mine[key] - n
            if left:
                mine[key] = left
            else:
                del mine[key]
                gone.append(key)
        # Source and platform (every bucket names them) written out, then media and regions (most buckets name none):
        # no tuple of the four pairs built per bucket leaving per window, no call for the common ones.
        mine = self.by_source
        for key, n in other.by_source.items():
            left = mine[key] - n
            if left:
                mine[key] = left
            else:
                del mine[key]
        mine = self.by_platform
        for key, n in other.by_platform.items():
            left = mine[key] - n
            if left:
                mine[key] = left
            else:
                del mine[key]
        if other.by_media:
            _subtract(self.by_media, other.by_media)
        if other.by_region:
            _subtract(self.by_region, other.by_region)
        return gone

    def _maps(self, other: _Counts) -> list[tuple[dict[str, int], dict[str, int]]]:
        return [
            (self.by_author, other.by_author),
            (self.by_media, other.by_media),
            (self.by_source, other.by_source),
            (self.by_platform, other.by_platform),
            (self.by_region, other.by_region),
        ]

    def to_list(self) -> list[Any]:
        return [
            self.posts, self.reposts, self.comments, self.likes, self.offline_posts, self.planned_posts,
            self.relevance_sum, self.by_author, self.by_media, self.by_source, self.by_platform, self.by_region,
            self.relevance_posts,
        ]  # fmt: skip

    def load(self, data: Sequence[Any]) -> None:
        """Inverse of to_list; also reads the 12-item lists of states written before `relevance_posts` existed
        (appended last so positions 0-11 keep their meaning). Their sum is the same (a post without evidence adds
        0) but the posts with evidence were not counted: they are read as all `posts` (the old mean over every
        post, diluted as it was), which the event's new posts then correct."""
        (self.posts, self.reposts, self.comments, self.likes) = data[:4]
        (self.offline_posts, self.planned_posts, self.relevance_sum) = data[4:7]
        self.by_author, self.by_media, self.by_source, self.by_platform, self.by_region = (dict(m) for m in data[7:12])
        self.relevance_posts = data[12] if len(data) > 12 else (self.posts if self.relevance_sum else 0)
        self.scope = -1


def _subtract(mine: dict[str, int], theirs: dict[str, int]) -> None:
    """Take a bucket's distinct-value counts from a window's, dropping the values that reach zero."""
    for key, n in theirs.items():
        left = mine[key] - n
        if left:
            mine[key] = left
        else:
            del mine[key]


class Bucket(_Counts):
    """The posts of one fixed slice of event time [start, end)."""

    __slots__ = ("end", "start")

    def __init__(self, start: float, seconds: float) -> None:
        super().__init__()
        self.start = start
        self.end = start + seconds


class Window(_Counts):
    """Running counts over the buckets ending after now - seconds; `prev_posts` covers the window
    before it (for acceleration). `seconds` is inf for the event's lifetime ("total")."""

    __slots__ = ("dq", "followers", "hours", "name", "prev", "prev_posts", "seconds", "source_relevance", "top",
                 "top_k", "top_total", "top_valid")  # fmt: skip

    def __init__(self, name: str, seconds: float, top_k: int, followers: dict[str, int]) -> None:
        super().__init__()
        self.name = name
        self.seconds = seconds
        self.hours = seconds / 3600.0  # for "total": the event's age, set as the clock moves
        self.top_k = top_k
        self.followers = followers  # the event's author -> follower count (largest seen)
        # The lifetime window ("total") never holds buckets: it shares one deque that stays empty (maxlen 0 drops
        # anything appended), two objects less per event for the garbage collector to walk.
        self.dq: deque[Bucket] = deque() if seconds != math.inf else _NO_BUCKETS
        # The window before it gets its own deque only once a bucket moves there (EventMetrics): most events are
        # one or two posts that expire before that, and every deque is one more object for the garbage collector
        # to walk on each full collection (nearly half the CPU of a replay without parents went to collections).
        self.prev: deque[Bucket] = _NO_BUCKETS
        self.prev_posts = 0
        # Ascending (followers, author) of the top-k authors; recomputed only when an author in it leaves.
        self.top: list[tuple[int, str]] = []
        self.top_total = 0
        self.top_valid = True
        # The event's source post (its earliest)'s relevance in thousandths; set on the lifetime window only.
        self.source_relevance = 0

    def note_author(self, author: str, followers: int) -> None:
        """Keep the top-k list exact when `author` joins the window."""
        if not self.top_valid:
            return
        top = self.top
        if len(top) < self.top_k:
            insort(top, (followers, author))
            self.top_total += followers
        elif followers > top[0][0]:
            insort(top, (followers, author))
            self.top_total += followers - top[0][0]
            del top[0]

    def drop(self, bucket: Bucket) -> None:
        gone = self.remove(bucket)
        if gone and self.top_valid:
            top = [a for _, a in self.top]
            for author in gone:
                if author in top:
                    self.top_valid = False
                    break

    # The metric names of WindowMetrics, read by the policy.
    @property
    def distinct_authors(self) -> int:
        return len(self.by_author)

    @property
    def velocity(self) -> float:
        return self.posts / self.hours

    @property
    def acceleration(self) -> float:
        if math.isinf(self.seconds):
            return 0.0
        hours = self.hours
        return (self.posts - self.prev_posts) / hours / hours

    @property
    def top_author_reach(self) -> int:
        if not self.top_valid:
            followers = self.followers
            k = self.top_k
            if len(self.by_author) <= _SORT_ALL:
                # The same list as nlargest's (the (followers, author) pairs are distinct), without its overhead:
                # most windows that lose a top author hold a handful of authors (10 minutes, an hour).
                ranked = sorted([(followers[a], a) for a in self.by_author])
                self.top = ranked[len(ranked) - k :] if k < len(ranked) else ranked
            else:
                self.top = sorted(heapq.nlargest(k, ((followers[a], a) for a in self.by_author)))
            self.top_total = sum(f for f, _ in self.top)
            self.top_valid = True
        return self.top_total

    @property
    def sources(self) -> int:
        return len(self.by_source)

    @property
    def platforms(self) -> int:
        return len(self.by_platform)

    @property
    def media_involved(self) -> int:
        return len(self.by_media)

    @property
    def regional_scope(self) -> int:
        scope = self.scope
        if scope < 0:
            scope = self.scope = regional_scope(self.by_region)
        return scope

    @property
    def offline_risk(self) -> float:
        weighted = self.offline_posts + self.planned_posts
        return weighted / (weighted + OFFLINE_RISK_HALF)

    @property
    def relevance(self) -> float:
        """The larger of the source post's score (lifetime window only) and the mean score of the posts whose
        score has evidence (> 0; the scorer gives 0 exactly when it found none).

        Not the mean over all posts: an empty repost ("转发微博") says nothing about what the event is about,
        and that mean sank a cascade whose source post scores 0.9 under 0.1 after its first ten reposts, so no
        event reached the routing (0.5) or blue (0.8) threshold. The mean over the posts with evidence alone is
        pulled down by the many weakly evidenced replies (calibrated 0.19) under a source post of 0.99. The
        source post says what the event is about; the replies with evidence may say it too. So a threshold keeps
        the meaning of the post score's: relevance >= 0.8 is an event whose source post, or whose posts that say
        anything on it on average, score >= 0.8 (bench/grading_eval.py prints both against labelled events)."""
        n = self.relevance_posts
        mean = self.relevance_sum / n if n else 0.0
        source = self.source_relevance
        return (source if source > mean else mean) / 1000.0  # max(mean, source) without the call


def add_post(c: Contribution, followers: int, bucket: Bucket, windows: Collection[Window]) -> None:
    """Count one post in its bucket and in the windows it falls in: what `_Counts.add` does to each, with the post
    unpacked once and the fields most posts leave at zero tested once, not per set (five sets take every post); a
    window's top-k list is told of an author new there who can enter it. `followers`: the author's, as the event
    knows them."""
    author, _, reposts, comments, likes, offline, planned, relevance, media, source, platform, codes = c
    sets = (bucket, *windows)
    # Each field tested once, not once per set: a loop of its own for the counts, which most posts leave at zero,
    # and none for source and platform, which every post of the collector names.
    if source and platform:
        for s in sets:
            s.posts += 1
            d = s.by_source
            d[source] = d.get(source, 0) + 1
            d = s.by_platform
            d[platform] = d.get(platform, 0) + 1
    else:
        for s in sets:
            s.posts += 1
            if source:
                d = s.by_source
                d[source] = d.get(source, 0) + 1
            if platform:
                d = s.by_platform
                d[platform] = d.get(platform, 0) + 1
    if reposts:
        for s in sets:
            s.reposts += reposts
    if comments:
        for s in sets:
            s.comments += comments
    if likes:
        for s in sets:
            s.likes += likes
    if offline or planned:  # planned is 0 without offline (Grader._contribution); adding 0 changes nothing
        for s in sets:
            s.offline_posts += offline
            s.planned_posts += planned
    if relevance:
        for s in sets:
            s.relevance_sum += relevance
            s.relevance_posts += 1
    if media:
        for s in sets:
            d = s.by_media
            d[author] = d.get(author, 0) + 1
    if codes:
        for s in sets:
            regions = s.by_region
            for code in codes:
                had = regions.get(code, 0)
                regions[code] = had + 1
                if not had:
                    s.scope = -1
    d = bucket.by_author
    d[author] = d.get(author, 0) + 1
    for w in windows:
        d = w.by_author
        n = d.get(author, 0)
        d[author] = n + 1
        if not n and w.top_valid and (len(w.top) < w.top_k or followers > w.top[0][0]):
            w.note_author(author, followers)


def insert_sorted(dq: deque[Bucket], bucket: Bucket) -> None:
    """Insert keeping `dq` ordered by start (late buckets are rare, so a scan is fine)."""
    if not dq or dq[-1].start < bucket.start:
        dq.append(bucket)
        return
    for i, other in enumerate(dq):
        if other.start > bucket.start:
            dq.insert(i, bucket)
            return
    dq.append(bucket)
