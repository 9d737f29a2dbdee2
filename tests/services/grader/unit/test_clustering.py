"""Online event detection: parents, near duplicates, shared keywords, merges, expiry."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.grader.core import Clusterer, ClusteringConfig, EventSnapshot, PostView

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
STORY_A = tuple(f"a{i}" for i in range(12))
STORY_B = tuple(f"b{i}" for i in range(12))
FP_A = 0x0123_4567_89AB_CDEF
FP_B = 0xFEDC_BA98_7654_3210


def post(pid: str, minutes: float = 0, **fields) -> PostView:
    return PostView(id=pid, created_at=T0 + timedelta(minutes=minutes), author_id=f"u-{pid}", **fields)


def run(clusterer: Clusterer, *posts: PostView):
    return [clusterer.assign(p, p.created_at.timestamp()) for p in posts]


@pytest.mark.parametrize(
    ("second", "via", "same_event"),
    [
        (post("r", 1, parent_id="s"), "parent", True),
        (post("r", 1, root_id="s"), "root", True),
        (post("r", 1, keywords=STORY_A, simhash=FP_A ^ 0b101), "near_duplicate", True),  # 2 bits apart
        (post("r", 1, keywords=(*STORY_A[:6], "x1", "x2"), simhash=FP_B), "keywords", True),
        (post("r", 1, keywords=STORY_B, simhash=FP_B), "new", False),
        (post("r", 1, keywords=STORY_A, simhash=FP_A ^ 0b1111), "keywords", True),  # 4 bits: not near-dup
        (post("r", 1, text="转发微博", keywords=("转发", "发微", "微博"), simhash=FP_A), "new", False),  # too short
    ],
)
def test_second_post_joins_or_opens(second, via, same_event):
    c = Clusterer(ClusteringConfig(originals_by_text=True))
    first, got = run(c, post("s", keywords=STORY_A, simhash=FP_A), second)
    assert first.created and first.event_id == "ev-s"
    assert got.via == via
    assert (got.event_id == "ev-s") is same_event


def test_keyword_match_needs_a_recent_event():
    c = Clusterer(ClusteringConfig(keyword_window_seconds=3600, originals_by_text=True))
    run(c, post("s", keywords=STORY_A))
    (late,) = run(c, post("r", 120, keywords=STORY_A[:8]))
    assert late.via == "new"


def test_with_parents_an_original_does_not_join_another_cascade_by_text():
    c = Clusterer()
    _, twin = run(c, post("s", keywords=STORY_A, simhash=FP_A), post("t", 1, keywords=STORY_A, simhash=FP_A))
    assert (twin.event_id, twin.via) == ("ev-t", "new")


def test_repost_before_its_parent_pulls_the_parent_in():
    c = Clusterer()
    child, parent = run(c, post("r", 0, parent_id="s"), post("s", 1, keywords=STORY_A))
    assert child.event_id == "ev-r"
    assert (parent.event_id, parent.via) == ("ev-r", "child")


def test_a_repost_quoting_another_story_does_not_merge_by_default():
    c = Clusterer()
    run(c, post("a", 0, keywords=STORY_A, simhash=FP_A), post("b", 5, keywords=STORY_B, simhash=FP_B))
    # Parent links are authoritative: the repost of a quoting b's text stays in a, and b stays apart.
    (link,) = run(c, post("r", 6, parent_id="a", keywords=STORY_B, simhash=FP_B))
    assert (link.event_id, link.absorbed) == ("ev-a", ())
    assert c.resolve("ev-b") == "ev-b"


def test_post_linking_two_events_merges_them_with_a_redirect():
    c = Clusterer(ClusteringConfig(merge_on_text=True, originals_by_text=True))
    a, b = run(c, post("a", 0, keywords=STORY_A, simhash=FP_A), post("b", 5, keywords=STORY_B, simhash=FP_B))
    assert a.event_id != b.event_id
    # A repost of a's post whose text is b's: one story after all (when text may merge cascades).
    (link,) = run(c, post("r", 6, parent_id="a", keywords=STORY_B, simhash=FP_B))
    assert link.event_id == "ev-a" and link.absorbed == ("ev-b",)
    assert c.resolve("ev-b") == "ev-a" and c.redirect_of("ev-b") == "ev-a"
    (later,) = run(c, post("r2", 7, parent_id="b"))
    assert later.event_id == "ev-a"
    assert c.clusters["ev-a"].size == 4


def test_engine_emits_a_final_snapshot_for_the_absorbed_event(feed):
    f = feed()
    f.post(keywords=STORY_A, simhash=FP_A)
    f.post(timedelta(minutes=5), keywords=STORY_B, simhash=FP_B)
    # A repost whose parent is in one event and whose chain root is in the other: parent links join them.
    f.post(timedelta(minutes=1), parent_id="p1", root_id="p2")
    merged = [o for o in f.outputs if isinstance(o, EventSnapshot) and o.merged_into]
    assert [(m.event_id, m.merged_into) for m in merged] == [("ev-p2", "ev-p1")]
    assert f.grader.event("ev-p2").event_id == "ev-p1"
    assert f.grader.event("ev-p1").post_count == 3


def test_boilerplate_fingerprint_shared_by_many_events_is_not_evidence():
    c = Clusterer(ClusteringConfig(near_dup_max_events=2, originals_by_text=True))
    boiler = ("分享", "享图", "图片", "片啦")
    for i in range(3):  # the same "分享图片啦" repost text in three unrelated events
        run(c, post(f"s{i}", i, keywords=tuple(f"k{i}{j}" for j in range(5)), simhash=FP_B ^ (0xFFFF << 16 * i)))
        run(c, post(f"r{i}", i + 0.5, parent_id=f"s{i}", keywords=boiler, simhash=FP_A))
    assert len(c.clusters) == 3
    (got,) = run(c, post("r", 5, keywords=boiler, simhash=FP_A))
    assert got.via != "near_duplicate"  # (shared keywords may still link it; common words lose weight with df)


def test_idle_events_expire_and_their_merged_ids_with_them():
    cfg = ClusteringConfig(horizon_seconds=3600, redirect_ttl_seconds=7200, merge_on_text=True)
    c = Clusterer(cfg)
    run(c, post("a", 0, keywords=STORY_A, simhash=FP_A), post("b", 1, keywords=STORY_B, simhash=FP_B))
    run(c, post("r", 2, parent_id="a", keywords=STORY_B, simhash=FP_B))
    assert c.expire((T0 + timedelta(minutes=30)).timestamp()) == []
    assert c.redirect_of("ev-b") == "ev-a" and c.resolve("ev-b") == "ev-a"  # while the survivor lives
    assert c.expire((T0 + timedelta(minutes=90)).timestamp()) == ["ev-a"]
    assert not c.posts and not c.postings and c.near.empty()
    # The redirect resolved to nothing once its survivor was gone: it goes with it, not after its 2 h TTL.
    assert c.redirect_of("ev-b") is None and not c.redirects and not c.merged
    assert "ev-a" not in json.dumps(c.to_dict())  # nothing of the expired event is kept
    # A late repost of the expired event's post opens a new event.
    (late,) = run(c, post("r3", 400, parent_id="a"))
    assert late.created


def test_title_is_the_most_reposted_post_with_text():
    c = Clusterer(ClusteringConfig(title_chars=10))
    run(
        c,
        post("s", 0, text="短", keywords=("x",)),
        post("r1", 1, parent_id="s", text="某县县长被曝收受巨额贿赂，网友热议", keywords=STORY_A, reposts=50),
        post("r2", 2, parent_id="s", text="另一条评论也很长很长很长", keywords=STORY_B, reposts=5),
    )
    assert c.title("ev-s") == "某县县长被曝收受巨…"
    assert set(c.keywords("ev-s")) <= set(STORY_A + STORY_B)


def test_weak_signals_follow_the_dominant_recent_event():
    cfg = replace(ClusteringConfig.with_weak_signals(), seed_min_keywords=10)
    c = Clusterer(cfg)
    _first, *rest = run(
        c,
        post("s", 0, keywords=STORY_A, simhash=FP_A),
        post("r1", 1, text="顶"),
        post("r2", 2, keywords=("真的", "假的", "求证", "转发")),
    )
    assert [r.event_id for r in rest] == ["ev-s", "ev-s"]
    assert {r.via for r in rest} == {"weak"}
    (stale,) = run(c, post("r3", 200, text="顶"))
    assert stale.via == "new"


def test_clusterer_state_round_trips():
    import json

    c = Clusterer(ClusteringConfig(merge_on_text=True, attach_wordless=False))
    run(c, post("a", 0, keywords=STORY_A, simhash=FP_A), post("b", 1, keywords=STORY_B, simhash=FP_B))
    run(c, post("r", 2, parent_id="a", keywords=STORY_B, simhash=FP_B), post("w", 2.5, text="顶"))
    assert c.unattached == {"w": (T0 + timedelta(minutes=2.5)).timestamp()}
    copy = Clusterer.from_dict(json.loads(json.dumps(c.to_dict())))
    assert copy.to_dict() == c.to_dict()
    nxt = post("n", 3, keywords=(*STORY_A[:7], "q"), simhash=FP_A ^ 1)
    assert run(copy, nxt) == run(c, nxt)
    assert copy.seen("w")
