"""The compact post id -> event id map of event detection (core/_postmap.py) against a plain dict, and the
clusterer's states from before it (events listing their posts) restored into it."""

from __future__ import annotations

import json
import random
import tracemalloc
from datetime import UTC, datetime, timedelta

from services.grader.core import ClusteringConfig, PostView
from services.grader.core._postmap import PostMap
from services.grader.core.clustering import Clusterer

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


class Reference:
    """What the map must behave like: a dict of post -> event, with merges and expiries applied to every post."""

    def __init__(self) -> None:
        self.posts: dict[str, str] = {}

    def merge(self, gone: str, keep: str) -> None:
        for pid, eid in self.posts.items():
            if eid == gone:
                self.posts[pid] = keep

    def drop(self, event_id: str) -> None:
        self.posts = {pid: eid for pid, eid in self.posts.items() if eid != event_id}


def test_random_operations_match_a_dict_through_rehashes_and_snapshots() -> None:
    rng = random.Random(5)
    ref, m = Reference(), PostMap()
    live_events = [f"ev-{i}" for i in range(40)]
    next_event = 40
    for step in range(30_000):
        roll = rng.random()
        if roll < 0.7:
            pid = f"weibo:{rng.randrange(40_000)}"
            eid = rng.choice(live_events)
            ref.posts[pid] = eid
            m[pid] = eid
        elif roll < 0.8:
            pid = f"weibo:{rng.randrange(40_000)}"
            assert m.pop(pid) == ref.posts.pop(pid, None)
        elif roll < 0.85 and len(live_events) > 2:
            gone, keep = rng.sample(live_events, 2)
            live_events.remove(gone)
            ref.merge(gone, keep)
            m.merge(gone, keep)
        elif roll < 0.9 and len(live_events) > 2:
            gone = rng.choice(live_events)
            live_events.remove(gone)
            live_events.append(f"ev-{next_event}")
            next_event += 1
            ref.drop(gone)
            m.drop(gone)
        else:
            pid = f"weibo:{rng.randrange(40_000)}"
            assert m.get(pid) == ref.posts.get(pid)
            assert (pid in m) == (pid in ref.posts)
        if step % 7_000 == 6_999:  # a snapshot through JSON continues identically
            copy = PostMap.from_data(json.loads(json.dumps(m.to_data())))
            assert copy.to_data() == m.to_data()
            m = copy
    assert len(m) == len(ref.posts)
    assert all(m[pid] == eid for pid, eid in ref.posts.items())
    assert all(m.get(f"other:{i}") is None for i in range(2_000))


def test_a_post_map_keeps_far_fewer_bytes_per_post_than_a_dict_of_ids() -> None:
    ids = [f"weibo:{4_900_000_000_000_000 + i * 7919}" for i in range(90_000)]
    events = [f"ev-weibo:{4_900_000_000_000_000 + (i // 50) * 7919}" for i in range(90_000)]

    def retained(build: object) -> float:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = build()  # type: ignore[operator]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert kept is not None
        return (after - before) / len(ids)

    def as_dict() -> object:
        return {"".join(p): e for p, e in zip(ids, events, strict=True)}  # fresh id strings, as decoded posts

    def as_map() -> object:
        m = PostMap()
        for p, e in zip(ids, events, strict=True):
            m["".join(p)] = e
        m._memo.clear()  # the digests of recent ids are a bounded cache, not per post
        return m

    per_post_dict, per_post_map = retained(as_dict), retained(as_map)
    assert per_post_map <= 32 < 90 <= per_post_dict, (per_post_map, per_post_dict)


def _post(pid: str, minutes: float, **fields: object) -> PostView:
    return PostView(pid, T0 + timedelta(minutes=minutes), author_id=f"u-{pid}", **fields)  # type: ignore[arg-type]


def test_a_clusterer_state_from_before_the_post_map_restores_every_post() -> None:
    c = Clusterer(ClusteringConfig())
    posts = [_post("a", 0), _post("b", 1)]
    posts += [_post(f"r{i}", 2 + i, parent_id="a" if i % 2 else "b") for i in range(20)]
    posts.append(_post("bridge", 30, parent_id="a", root_id="b"))  # merges b's event into a's
    for p in posts:
        c.assign(p, p.created_at.timestamp())
    assert c.redirect_of("ev-b") == "ev-a"
    state = json.loads(json.dumps(c.to_dict()))
    assert state["posts"]["format"] == "qingfeng.grader.postmap/1"

    # The same state as written before the map: no "posts", each event lists its posts.
    old = json.loads(json.dumps(state))
    del old["posts"]
    for row in old["clusters"]:
        row[4] = [p.id for p in posts if c.posts.get(p.id) == row[0]]
    restored = Clusterer.from_dict(old)
    assert {p.id: restored.posts.get(p.id) for p in posts} == {p.id: "ev-a" for p in posts}
    assert restored.seen("r7") and not restored.seen("never")
    nxt = _post("late-reply", 40, parent_id="r3")
    assert restored.assign(nxt, nxt.created_at.timestamp()).event_id == "ev-a"
    # Written again, it is a state of the new format, and expiry still forgets the event's posts.
    assert "posts" in restored.to_dict()
    restored.expire((T0 + timedelta(days=8)).timestamp())
    assert not restored.seen("r7") and len(restored.posts) == 0


async def test_a_checkpoint_written_before_the_post_map_recovers_and_grades_on_identically() -> None:
    from dataclasses import replace

    from services.grader.state_codec import decode_state, encode_state
    from tests.services.grader.unit.test_state import Ports, feed, ids, started, story

    posts = story(150)
    reference = Ports()
    await feed(await started(reference), posts)

    ports = Ports()
    first = await started(ports, every_batches=3)
    await feed(first, posts[:60])  # checkpoint at 60 posts
    checkpoint = ports.store.checkpoint
    assert checkpoint is not None and checkpoint.positions == {0: 60}
    state = decode_state(checkpoint.state)
    clusterer = state["clusterer"]
    assert "posts" in clusterer
    # The same checkpoint as the grader wrote it before the post map: no "posts", each event lists its posts.
    held = {p.id: first.engine.clusterer.posts.get(p.id) for p in posts[:60]}
    del clusterer["posts"]
    for row in clusterer["clusters"]:
        row[4] = [pid for pid, eid in held.items() if eid == row[0]]
    ports.store.checkpoint = replace(checkpoint, state=encode_state(state))

    second = await started(ports, every_batches=3)
    assert all(second.engine.clusterer.seen(p.id) for p in posts[:60])
    await feed(second, posts[60:])
    assert ids(ports.sink.alerts) == ids(reference.sink.alerts)


def test_an_id_looked_up_then_added_lands_where_a_plain_insert_puts_it() -> None:
    # get() remembers where the probe of an absent id ended and __setitem__ puts that id there without probing again
    # (a new post is looked up, then added): the table must be the one plain inserts build (`plain` is never asked
    # before an insert), through rehashes, other lookups in between, pops, merges, expiries and ids looked up but
    # never added.
    rng = random.Random(11)
    looked, plain, ref = PostMap(), PostMap(), Reference()
    events = [f"ev-{i}" for i in range(30)]
    ids = [f"weibo:{i}" for i in range(15_000)]  # the same str objects again and again, as a post's id is
    for step in range(20_000):
        pid = rng.choice(ids)
        roll = rng.random()
        if roll < 0.3:  # added without a lookup: a position remembered for this id earlier must not be used
            looked[pid] = plain[pid] = ref.posts[pid] = rng.choice(events)
        elif roll < 0.75:
            eid = rng.choice(events)
            assert looked.get(pid) == ref.posts.get(pid)
            if rng.random() < 0.3:  # another id's lookup in between: the first one's position is not used
                other = rng.choice(ids)
                assert looked.get(other) == ref.posts.get(other)
            looked[pid] = plain[pid] = ref.posts[pid] = eid
        elif roll < 0.85:
            assert looked.get(pid) == ref.posts.get(pid)  # looked up, not added
        elif roll < 0.93:
            assert looked.pop(pid) == plain.pop(pid) == ref.posts.pop(pid, None)
        elif roll < 0.99:
            gone, keep = rng.sample(events, 2)
            looked.merge(gone, keep)
            plain.merge(gone, keep)
            ref.merge(gone, keep)
        else:
            gone = rng.choice(events)
            looked.drop(gone)
            plain.drop(gone)
            ref.drop(gone)
            events[events.index(gone)] = f"ev-{step}"
        if step % 2_000 == 0:
            assert looked.to_data() == plain.to_data()
    assert looked.to_data() == plain.to_data()
    assert len(looked) == len(ref.posts) > 1_000


def test_a_remembered_position_taken_by_another_id_is_not_used() -> None:
    # get(A) misses and remembers where A would go; another id whose probe starts there is then added (without a
    # lookup) and takes that very position; A added then must probe again, not overwrite the other id.
    m = PostMap()
    a = "weibo:A"
    assert m.get(a) is None
    hole = m._absent_at
    other = next(pid for n in range(100_000) if m._key(pid := f"weibo:{n}")[0] & m._mask == hole)
    m[other] = "ev-other"
    assert m._keys[hole]  # it took A's remembered position
    m[a] = "ev-a"
    assert (m.get(a), m.get(other), len(m)) == ("ev-a", "ev-other", 2)
