"""Never lump: without evidence a post stays apart, and a post without words or parent moves no event's level."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.grader.core import Alert, Clusterer, ClusteringConfig, GraderConfig, PostView

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
FP_A = 0x0123_4567_89AB_CDEF
FP_B = 0xFEDC_BA98_7654_3210
# Two unrelated stories and the short repost texts people add to either of them.
STORY_A = ("住建局", "局长", "实名举报", "受贿", "纪委", "介入", "调查", "百万元")
STORY_B = ("高速公路", "多车", "追尾", "事故", "交警", "绕行", "注意", "安全")
SHORT = (("转发", "微博"), ("可怕",), ("真的", "假的"), ("顶",), ("关注",), ())


def _post(pid: str, minutes: float, **fields) -> PostView:
    return PostView(id=pid, created_at=T0 + timedelta(minutes=minutes), author_id=f"u-{pid}", **fields)


def _two_cascades(n: int) -> list[PostView]:
    """Two cascades started a minute apart, their reposts interleaved, no parent links, short texts only."""
    posts = [_post("a", 0, keywords=STORY_A, simhash=FP_A), _post("b", 1, keywords=STORY_B, simhash=FP_B)]
    for i in range(n):
        kw = SHORT[i % len(SHORT)]
        text = "".join(kw) or "转发微博"
        posts.append(_post(f"a{i}", 2 + i * 0.5, text=text, keywords=kw, simhash=hash(text) & (2**64 - 1)))
        posts.append(_post(f"b{i}", 2.2 + i * 0.5, text=text, keywords=kw, simhash=hash(text) & (2**64 - 1)))
    return posts


def test_two_unrelated_concurrent_cascades_with_short_texts_stay_apart():
    c = Clusterer(ClusteringConfig.for_lost_parents())
    got = {p.id: c.assign(p, p.created_at.timestamp()) for p in _two_cascades(60)}
    assert got["a"].event_id == "ev-a" and got["b"].event_id == "ev-b"
    members: dict[str, set[str]] = {}
    for pid, a in got.items():
        if a.event_id:
            members.setdefault(a.event_id, set()).add(pid[0])
    assert all(len(story) == 1 for story in members.values()), members  # no event holds both stories
    # The short reposts join neither story's event: nothing says which one they belong to.
    assert {a.via for pid, a in got.items() if pid not in ("a", "b")} == {"unattached"}
    assert c.clusters["ev-a"].size == c.clusters["ev-b"].size == 1


def test_weak_signals_would_lump_them():
    """The comparison the rule is for: the activity guess pulls the other story's reposts into one event."""
    c = Clusterer(ClusteringConfig.with_weak_signals())
    got = {p.id: c.assign(p, p.created_at.timestamp()) for p in _two_cascades(60)}
    lumped = {pid[0] for pid, a in got.items() if a.event_id == got["b"].event_id}
    assert lumped == {"a", "b"}


def test_rare_shared_terms_or_a_near_duplicate_still_link_posts_without_parents():
    c = Clusterer(ClusteringConfig.for_lost_parents())
    c.assign(_post("a", 0, keywords=STORY_A, simhash=FP_A), T0.timestamp())
    near = _post("n", 5, keywords=(*STORY_A[:6], "网友", "热议"), simhash=FP_A ^ 0b11)
    rare = _post("k", 6, keywords=(*STORY_A[2:7], "网传"), simhash=FP_B)
    few = _post("f", 7, keywords=(STORY_A[3], STORY_A[4], "路人", "评论", "看看", "再说"), simhash=FP_B ^ 0xFF)
    out = [c.assign(p, p.created_at.timestamp()) for p in (near, rare, few)]
    assert [(a.event_id, a.via) for a in out[:2]] == [("ev-a", "near_duplicate"), ("ev-a", "keywords")]
    assert out[2].event_id == "ev-f"  # two shared terms are not enough evidence


def test_a_text_link_needs_a_recent_event():
    cfg = replace(ClusteringConfig.for_lost_parents(), text_window_seconds=3600, keyword_window_seconds=3600)
    c = Clusterer(cfg)
    c.assign(_post("a", 0, keywords=STORY_A, simhash=FP_A), T0.timestamp())
    late = _post("n", 180, keywords=STORY_A, simhash=FP_A ^ 1)
    assert c.assign(late, late.created_at.timestamp()).via == "new"


def test_posts_without_words_or_parent_move_no_level(feed):
    f = feed(config=GraderConfig(clustering=ClusteringConfig.for_lost_parents()))
    f.post(keywords=STORY_A, simhash=FP_A, author_followers=10_000_000)
    before = f.last("ev-p1")
    f.burst(400, timedelta(seconds=3), text="转发微博", keywords=("转发", "微博"))
    assert f.grader.event("ev-p1").post_count == before.post_count == 1
    assert [a.to_level for a in f.alerts()] == [] and len(f.grader.events) == 1
    assert f.grader.clusterer.seen("p2")  # a redelivery of an unattached post is still recognised


def test_with_parents_a_wordless_post_opens_its_own_event(feed):
    f = feed()
    f.post(keywords=STORY_A, simhash=FP_A)
    f.burst(40, timedelta(seconds=20), parent_id="p1")
    level = f.grader.event("ev-p1").level
    f.burst(200, timedelta(seconds=2), text="顶")  # no parent: each alone, none in ev-p1
    assert f.grader.event("ev-p1").post_count == 41 and f.grader.event("ev-p1").level == level
    assert all(isinstance(o, Alert) is False or o.event_id == "ev-p1" for o in f.outputs)


def test_a_wordless_post_others_reposted_is_an_event_of_its_own():
    c = Clusterer(ClusteringConfig.for_lost_parents())
    c.assign(_post("a", 0, keywords=STORY_A, simhash=FP_A), T0.timestamp())
    pic = _post("p", 1, text="", reposts=1200, comments=300)  # an image post: no words, but reposted
    got = c.assign(pic, pic.created_at.timestamp())
    assert (got.event_id, got.via) == ("ev-p", "new") and c.clusters["ev-a"].size == 1


def _warmed(n: int = 3000) -> Clusterer:
    """A no-parent clusterer whose document frequencies have seen `n` unrelated posts (rarity means something)."""
    c = Clusterer(ClusteringConfig.for_lost_parents())
    for i in range(n):
        p = _post(f"w{i}", -600 + i * 0.01, keywords=(f"填充{i}", f"词语{i}", "今天", "大家"), simhash=i * 7919)
        c.assign(p, p.created_at.timestamp())
    return c


SOURCE = ("转基因", "三文鱼", "获批", "上餐桌", "审批", "争议", "安全", "基因")
OTHER = ("土耳其", "导弹", "合约", "撤销", "北约", "防空", "远程", "系统")


def test_a_reply_joins_the_one_recent_cascade_owning_its_rare_term():
    c = _warmed()
    src = _post("s", 0, keywords=SOURCE, simhash=FP_A, reposts=2000)
    other = _post("o", 1, keywords=OTHER, simhash=FP_B, reposts=800)
    for p in (src, other):
        c.assign(p, p.created_at.timestamp())
    # One shared term, seen once before (in the source post): a reply in its own words.
    reply = _post("r", 3, keywords=("不会", "转基因", "东西", "反正"), simhash=FP_A ^ 0xFFFF_0000_FFFF)
    got = c.assign(reply, reply.created_at.timestamp())
    assert (got.event_id, got.via) == ("ev-s", "rare_terms")
    restored = Clusterer.from_dict(c.to_dict(), c.config)  # the anchor survives a checkpoint
    assert restored.clusters["ev-s"].anchor and not restored.clusters["ev-w0"].anchor
    # A post others reposted is a cascade's source itself: it joins no other cascade by shared terms.
    both = _post("o2", 4, keywords=("转基因", "导弹", "怎么", "回事"), simhash=FP_B ^ 0xFFFF_0000_FFFF, reposts=150)
    assert c.assign(both, both.created_at.timestamp()).event_id == "ev-o2"
    # A term two recent cascades use as much links to neither (转基因: ev-s and ev-o2).
    mixed = _post("m", 5, keywords=("转基因", "看看", "评论", "大家"), simhash=FP_A ^ 0xF0F0_F0F0_F0F0)
    assert c.assign(mixed, mixed.created_at.timestamp()).via == "new"
    # Both terms: only ev-o2 used both, twice the weight of ev-s or ev-o (the margin is 1.5).
    pair = _post("p", 6, keywords=("转基因", "导弹", "真的", "评论"), simhash=FP_B ^ 0x0FF0_0FF0_0FF0)
    assert c.assign(pair, pair.created_at.timestamp()).event_id == "ev-o2"


def test_rare_terms_need_an_anchor_a_rare_word_and_a_recent_cascade():
    c = _warmed()
    quiet = _post("q", 0, keywords=SOURCE, simhash=FP_A)  # nobody reposted or answered it: not a cascade's source
    loud = _post("l", 1, keywords=OTHER, simhash=FP_B, reposts=800)
    for p in (quiet, loud):
        c.assign(p, p.created_at.timestamp())
    reply = _post("r", 2, keywords=("转基因", "不会", "东西", "反正"), simhash=FP_A ^ 0xFFFF_0000_FFFF)
    assert c.assign(reply, reply.created_at.timestamp()).via == "new"
    # "今天" is in every warm-up post: common words link nothing, even to the one anchor that used it.
    common = _post("c", 3, keywords=("今天", "大家", "看看", "评论"), simhash=FP_B ^ 0xF0F0_F0F0_F0F0)
    assert c.assign(common, common.created_at.timestamp()).via == "new"
    soon = _post("y", 10, keywords=("北约", "怎么", "回事", "真的"), simhash=FP_B ^ 0x0F0F_0F0F_0F0F)
    assert c.assign(soon, soon.created_at.timestamp()).event_id == "ev-l"
    late = _post("z", 60, keywords=("北约", "不会", "东西", "反正"), simhash=FP_B ^ 0xFFFF_0000_FFFF)
    assert c.assign(late, late.created_at.timestamp()).via == "new"  # the cascade was quiet for 50 minutes


def test_with_parents_rare_terms_link_nothing():
    c = Clusterer(ClusteringConfig())
    assert c.config.rare_window_seconds == 0
    src = _post("s", 0, keywords=SOURCE, simhash=FP_A, reposts=2000)
    c.assign(src, src.created_at.timestamp())
    reply = _post("r", 3, keywords=("不会", "转基因", "东西", "反正"), simhash=FP_A ^ 0xFFFF_0000_FFFF)
    assert c.assign(reply, reply.created_at.timestamp()).event_id == "ev-r"


def test_a_source_joins_no_other_source_of_its_story_by_keywords():
    """Two accounts post the same story anew (different words, so no near duplicate), each reposted: two cascades,
    as with parents. A post nobody reacted to with the same keywords still joins by them."""
    c = Clusterer(ClusteringConfig.for_lost_parents())
    first = _post("s1", 0, keywords=STORY_A, simhash=FP_A, reposts=600)
    again = _post("s2", 30, keywords=(*STORY_A[:6], "网友", "热议"), simhash=FP_B, reposts=400, comments=90)
    plain = _post("p", 31, keywords=(*STORY_A[:6], "网友", "热议"), simhash=FP_B ^ 0xFFFF_0000_FFFF)
    got = [c.assign(p, p.created_at.timestamp()) for p in (first, again, plain)]
    assert [(a.event_id, a.via) for a in got] == [("ev-s1", "new"), ("ev-s2", "new"), ("ev-s2", "keywords")]
    # Under 100 reposts and comments a post is no cascade's source: it joins by keywords as before.
    c = Clusterer(ClusteringConfig.for_lost_parents())
    c.assign(first, first.created_at.timestamp())
    answer = replace(again, reposts=60, comments=20)
    assert (c.assign(answer, answer.created_at.timestamp()).event_id, c.clusters["ev-s1"].anchor) == ("ev-s1", True)
    # The default config (a stream with parents, where a post without one is rarely a source) keeps the link.
    c = Clusterer(replace(ClusteringConfig(), originals_by_text=True))
    c.assign(first, first.created_at.timestamp())
    assert c.assign(again, again.created_at.timestamp()).via == "keywords"
