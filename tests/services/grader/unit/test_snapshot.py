"""Restart recovery: snapshot() -> JSON -> restore() continues exactly as the uninterrupted grader."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.grader.core import Alert, EventSnapshot, Grader, PostView

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def stream(n: int = 1500, seed: int = 3) -> list[PostView]:
    """Several stories growing at different speeds, with reposts, near duplicates, media, offline talk, late posts."""
    rng = random.Random(seed)
    posts: list[PostView] = []
    now = T0
    stories: list[tuple[str, tuple[str, ...], int]] = []
    for i in range(n):
        now += timedelta(seconds=rng.choice([2, 5, 10, 30, 60, 600, 3600]))
        if not stories or rng.random() < 0.03:
            words = tuple(f"w{len(stories)}_{k}" for k in range(10))
            stories.append((f"p{i}", words, rng.getrandbits(64)))
            parent, keywords, fp = None, words, stories[-1][2]
        else:
            source, words, fp = rng.choice(stories[-4:])
            parent = source if rng.random() < 0.8 else None
            keywords = words if rng.random() < 0.3 else ()
            fp = fp if keywords else None
        created = now - timedelta(seconds=rng.choice([0] * 8 + [120, 1500]))  # a few late posts
        posts.append(
            PostView(
                id=f"p{i}",
                created_at=created,
                author_id=f"u{rng.randrange(300)}",
                author_followers=rng.choice([10, 100, 5000, 2_000_000]),
                author_is_media=rng.random() < 0.01,
                source_kind="weibo_api",
                platform="weibo.com",
                text="某局长" if keywords else "",
                keywords=keywords,
                simhash=fp,
                parent_id=parent,
                reposts=rng.randrange(50),
                comments=rng.randrange(50),
                region_codes=rng.choice([(), ("330100",), ("330200",), ("110000",)]),
                offline_signals=("聚集",) if rng.random() < 0.02 else (),
            )
        )
    return posts


def feed(grader: Grader, posts: list[PostView], batch: int) -> list:
    out = []
    for i in range(0, len(posts), batch):
        out.extend(grader.process_batch(posts[i : i + batch]))
    return out


@pytest.mark.parametrize("split", [1, 400, 900, 1400])
def test_restored_grader_continues_identically(four_level, split):
    posts = stream()
    whole = Grader(four_level)
    feed(whole, posts[:split], 50)
    saved = json.loads(json.dumps(whole.snapshot()))
    restored = Grader.restore(saved, four_level)
    assert restored.snapshot() == saved
    rest_whole = feed(whole, posts[split:], 50)
    rest_restored = feed(restored, posts[split:], 50)
    assert rest_restored == rest_whole
    end = whole.clock_at + timedelta(days=2)
    assert restored.tick(end) == whole.tick(end)
    assert restored.snapshot() == whole.snapshot()


def test_alerts_and_final_states_do_not_depend_on_batch_size(four_level):
    posts = stream(800)
    one, many = Grader(four_level), Grader(four_level)
    out_one, out_many = feed(one, posts, 1), feed(many, posts, 97)
    alerts = [(a.event_id, a.sequence, a.to_level, a.at, a.reasons) for a in out_one if isinstance(a, Alert)]
    assert alerts == [(a.event_id, a.sequence, a.to_level, a.at, a.reasons) for a in out_many if isinstance(a, Alert)]
    assert len(alerts) >= 10 and {a[2] for a in alerts} >= {"blue", "yellow"}

    def last(out):
        return {o.event_id: (o.level, o.post_count, o.merged_into) for o in out if isinstance(o, EventSnapshot)}

    assert last(out_one) == last(out_many)
    # A batch emits one snapshot per changed event, as fresh as its last evaluation (ticks included).
    assert sum(isinstance(o, EventSnapshot) for o in out_many) < sum(isinstance(o, EventSnapshot) for o in out_one)
    assert [replace(s, version=0) for s in one.snapshots()] == [replace(s, version=0) for s in many.snapshots()]


def test_alert_ids_are_unique_and_sequences_increase(four_level):
    out = feed(Grader(four_level), stream(), 25)
    alerts = [o for o in out if isinstance(o, Alert)]
    assert len({a.id for a in alerts}) == len(alerts)
    seqs: dict[str, int] = {}
    for a in alerts:
        assert a.sequence == seqs.get(a.event_id, 0) + 1
        seqs[a.event_id] = a.sequence


def test_restore_rejects_foreign_state(four_level):
    with pytest.raises(ValueError, match="not a grader state"):
        Grader.restore({"format": "something/else"}, four_level)


def test_restore_under_a_new_policy_then_regrade(four_level, three_level):
    g = Grader(four_level)
    feed(g, stream(300), 50)
    restored = Grader.restore(json.loads(json.dumps(g.snapshot())), three_level)
    assert restored.state_policy_version == "four-level.v4"  # grades kept until set_policy
    assert [s.level for s in restored.snapshots()] == [s.level for s in g.snapshots()]
    out = restored.set_policy(three_level)
    assert restored.state_policy_version == "three-tier.v1"
    assert {o.grade.policy_version for o in out if isinstance(o, EventSnapshot)} == {"three-tier.v1"}
    assert all(s.grade.policy_version == "three-tier.v1" for s in restored.snapshots())
