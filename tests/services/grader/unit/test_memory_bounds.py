"""The grader's state stops growing once its clustering horizon is full (bench/bench_memory_growth.py measures it).

A stream of short stories runs for many horizons of event time; what event detection and the engine keep must
level off at what one horizon holds, not grow with every post ever seen.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from services.grader.core import Clusterer, ClusteringConfig, Grader, GraderConfig, Policy, PostView

from .conftest import T0

HORIZON_S = 120.0
RATE = 20  # posts a second of event time
STORY_S = 10  # each story gets posts for this long (an original, then reposts of it)


def _posts(seconds: int, start: int = 0) -> list[PostView]:
    """Stories of ``STORY_S`` s, one after another, each with its own words and fingerprint."""
    out = []
    for i in range(start * RATE, (start + seconds) * RATE):
        second = i / RATE
        story = int(second // STORY_S)
        origin = f"s{story}-0"
        first = i % (STORY_S * RATE) == 0
        out.append(
            PostView(
                id=origin if first else f"s{story}-{i}",
                created_at=T0 + timedelta(seconds=second),
                author_id=f"u{i % 997}",
                keywords=tuple(f"w{story}-{k}" for k in range(8)),
                simhash=(story * 0x9E3779B97F4A7C15) & (2**64 - 1),
                parent_id=None if first else origin,
                root_id=None if first else origin,
            )
        )
    return out


def _sizes(c: Clusterer) -> dict[str, int]:
    return {
        "events": len(c.clusters),
        "posts": len(c.posts),
        "placeholders": len(c.placeholders),
        "postings": sum(len(p) for p in c.postings.values()),
        "band entries": sum(len(e) for band in c.near.bands for e in band.values()),
        "redirects": len(c.redirects),
        "unattached": len(c.unattached),
    }


def test_event_detection_levels_off_at_one_horizon() -> None:
    c = Clusterer(ClusteringConfig(horizon_seconds=HORIZON_S))
    sizes = []
    for minute in range(20):  # ten horizons
        for p in _posts(60, start=minute * 60):
            c.assign(p, p.created_at.timestamp())
        c.expire((T0 + timedelta(seconds=(minute + 1) * 60)).timestamp())
        sizes.append(_sizes(c))
    # One horizon holds 120 s of posts (2,400) in 12-13 stories; nothing else accumulates.
    assert all(s == sizes[3] for s in sizes[3:]), sizes
    assert sizes[-1]["posts"] <= (HORIZON_S + STORY_S) * RATE
    assert sizes[-1]["events"] <= HORIZON_S / STORY_S + 2
    assert "closed" not in c.to_dict()  # expired events leave no trace (was: one id per event for 30 days)


def _merged_pair(ttl_s: float) -> tuple[Clusterer, PostView]:
    """Two stories merged by a post that names both (the younger absorbed); returns the survivor's original."""
    c = Clusterer(ClusteringConfig(horizon_seconds=HORIZON_S, redirect_ttl_seconds=ttl_s))
    a, b = _posts(1)[0], _posts(1, start=STORY_S)[0]  # the originals of two stories
    for p in (a, b):
        c.assign(p, p.created_at.timestamp())
    link = replace(_posts(1, start=STORY_S + 1)[1], id="link", parent_id=a.id, root_id=b.id)
    assert c.assign(link, link.created_at.timestamp()).absorbed  # one post names both: one event absorbed
    assert len(c.redirects) == 1
    return c, a


def test_a_merge_redirect_lives_for_its_ttl_at_most_while_the_survivor_lives() -> None:
    c, a = _merged_pair(ttl_s=600)
    for second in range(STORY_S + 60, STORY_S + 800, 60):  # the survivor stays active past the TTL
        repost = replace(_posts(1, start=second)[1], id=f"keep-{second}", parent_id=a.id, root_id=a.id)
        c.assign(repost, repost.created_at.timestamp())
        c.expire(repost.created_at.timestamp())
        assert (len(c.redirects) == 1) == (second < STORY_S + 1 + 600), second
    assert len(c.clusters) == 1


def test_a_merge_redirect_leaves_with_its_survivor() -> None:
    c, _ = _merged_pair(ttl_s=30 * 86400)
    c.expire((T0 + timedelta(seconds=STORY_S + HORIZON_S + 10)).timestamp())
    assert not c.clusters and not c.redirects and not c.merged  # not kept for the 30 days of its TTL


def _engine_sizes(g: Grader) -> tuple[int, int, int]:
    return len(g.events), len(g.clusterer.posts), len(g._heap)


def test_engine_state_levels_off_at_one_horizon(four_level: Policy) -> None:
    config = GraderConfig(clustering=ClusteringConfig(horizon_seconds=HORIZON_S))
    g = Grader(four_level, config)
    sizes = []
    for minute in range(20):
        g.process_batch(_posts(60, start=minute * 60))
        sizes.append(_engine_sizes(g))
    events, posts, heap = sizes[-1]
    # At most one horizon plus the expiry's lateness (an eighth of it) of posts and stories.
    assert posts <= (HORIZON_S * 9 / 8 + STORY_S) * RATE, sizes
    assert events <= HORIZON_S * 9 / 8 / STORY_S + 2, sizes
    assert heap <= 2 * len(g.live) + 1024, sizes


def test_a_state_of_before_drops_the_redirects_whose_survivor_is_gone() -> None:
    c, _ = _merged_pair(ttl_s=30 * 86400)
    data = c.to_dict()
    data["redirects"].insert(0, ["ev-old", "ev-gone", 0.0])  # states of before kept them for the TTL
    restored = Clusterer.from_dict(data, c.config)
    assert list(restored.redirects) == list(c.redirects) and restored.merged == c.merged
