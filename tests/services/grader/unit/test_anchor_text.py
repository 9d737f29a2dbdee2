"""The rare-term link finds a reply's term in the text of a recent cascade's source post (_anchor_text.py), and
still never lumps: two unrelated concurrent cascades stay apart, a term two sources contain links to neither."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.grader.core import Clusterer, ClusteringConfig, PostView
from services.grader.core._anchor_text import AnchorTexts

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
# Two unrelated stories; the collector lists only a post's first keywords, so the source's later words
# ("猴脑", "SBS") are in its text but not in its keywords.
TEXT_A = "含泪揭露一只幼猴紧紧搂住即将被活取猴脑的妈妈，广东某餐馆的菜单上竟然还有这道菜"
KEYS_A = ("含泪", "揭露", "一只", "幼猴", "紧紧", "搂住", "即将", "活取")
TEXT_B = "你最喜欢哪家韩国电视台的综艺？SBS、MBC还是KBS？跑男、无挑和两天一夜你站哪一边"
KEYS_B = ("喜欢", "韩国", "电视台", "综艺", "站哪", "一边", "跑男", "无挑")
FILLER = ("今天", "大家", "看看", "真的")


def _post(pid: str, minutes: float, **fields) -> PostView:
    return PostView(id=pid, created_at=T0 + timedelta(minutes=minutes), author_id=f"u-{pid}", **fields)


def _warmed(n: int = 1500) -> Clusterer:
    """A no-parent clusterer whose document frequencies have seen `n` unrelated posts (rarity means something)."""
    c = Clusterer(ClusteringConfig.for_lost_parents())
    for i in range(n):
        p = _post(f"w{i}", -600 + i * 0.01, keywords=(f"填充{i}", f"词语{i}", *FILLER), simhash=i * 7919)
        c.assign(p, p.created_at.timestamp())
    return c


def _sources(c: Clusterer) -> None:
    for p in (
        _post("a", 0, text=TEXT_A, keywords=KEYS_A, simhash=0x0123_4567_89AB_CDEF, reposts=900, comments=40),
        _post("b", 1, text=TEXT_B, keywords=KEYS_B, simhash=0xFEDC_BA98_7654_3210, reposts=300),
    ):
        assert c.assign(p, p.created_at.timestamp()).via == "new"


def _reply(pid: str, minutes: float, *words: str, **fields) -> PostView:
    kws = (*words, *FILLER)[:6]
    return _post(pid, minutes, text="".join(kws), keywords=kws, simhash=hash(pid) & (2**64 - 1), **fields)


def test_the_index_finds_short_and_long_terms_of_recent_anchor_texts_only():
    texts = AnchorTexts(1800.0)
    texts.add("ev-a", TEXT_A, 0.0)
    texts.add("ev-b", TEXT_B, 600.0)
    assert texts.containing("猴脑", 0.0) == ["ev-a"] and texts.containing("SBS", 0.0) == ["ev-b"]
    assert texts.containing("广东某餐馆", 0.0) == ["ev-a"]  # longer than a gram: checked against the text
    assert texts.containing("广东某饭店", 0.0) == []
    assert texts.containing("猴脑", 1.0) == []  # opened before `since`
    assert texts.containing("猴", 0.0) == []  # one character is no evidence
    restored = AnchorTexts(1800.0)
    restored.load(texts.to_list())
    assert restored.to_list() == texts.to_list() and restored.containing("MBC", 0.0) == ["ev-b"]
    texts.add("ev-c", "三十分钟以后的另一个故事", 2000.0)  # ev-a (at 0 s) is now older than the window
    assert len(texts) == 2 and texts.containing("猴脑", -1.0) == []


def test_a_reply_naming_a_word_of_the_source_text_joins_it():
    c = _warmed()
    _sources(c)
    # "猴脑" and "餐馆" are not among the source's keywords, but in its text; no other recent source has them.
    got = c.assign(_reply("r1", 3, "猴脑", "餐馆", "残忍"), T0.timestamp() + 180)
    assert (got.event_id, got.via) == ("ev-a", "rare_terms")
    got = c.assign(_reply("r2", 4, "SBS", "MBC", "综艺节目"), T0.timestamp() + 240)
    assert (got.event_id, got.via) == ("ev-b", "rare_terms")
    # The state carries the index: a restored clusterer links the same way.
    restored = Clusterer.from_dict(c.to_dict(), c.config)
    again = _reply("r3", 5, "猴脑", "菜单", "广东")
    assert restored.assign(again, T0.timestamp() + 300).event_id == c.assign(again, T0.timestamp() + 300).event_id
    assert c.assign(_reply("r4", 6, "猴脑", "菜单"), T0.timestamp() + 360).event_id == "ev-a"


def test_two_unrelated_concurrent_cascades_with_source_texts_stay_apart():
    """Replies interleaved between two concurrent sources: each joins its own story or none, never the other."""
    c = _warmed()
    _sources(c)
    story = {"a": (("猴脑",), ("餐馆", "菜单"), ("幼猴", "残忍")), "b": (("SBS", "跑男"), ("MBC",), ("综艺", "韩国"))}
    got = {}
    for i in range(30):
        for s, minutes in (("a", 2 + i * 0.5), ("b", 2.2 + i * 0.5)):
            words = story[s][i % 3] if i % 2 else ("可怕", "转发")  # every other reply only reacts
            p = _reply(f"{s}{i}", minutes, *words)
            got[p.id] = c.assign(p, p.created_at.timestamp())
    members: dict[str, set[str]] = {}
    for pid, a in got.items():
        members.setdefault(a.event_id, set()).add(pid[0])
    assert all(len(side) == 1 for side in members.values()), members  # no event holds both stories
    assert members["ev-a"] == {"a"} and members["ev-b"] == {"b"}
    assert c.clusters["ev-a"].size == c.clusters["ev-b"].size == 16  # the source and its 15 replies naming it
    reacting = [a.event_id for pid, a in got.items() if int(pid[1:]) % 2 == 0]
    assert not {"ev-a", "ev-b"} & set(reacting)  # a reply that only reacts joins neither story


def test_a_term_both_sources_contain_links_to_neither_and_a_source_joins_no_other():
    c = _warmed()
    _sources(c)
    shared = _post("c", 2, text="今天的新闻", keywords=("新闻", "网友", "评论", "今天"), simhash=7, reposts=150)
    assert c.assign(shared, shared.created_at.timestamp()).event_id == "ev-c"
    # "韩国" is in TEXT_B only; a third source containing it too makes it no evidence for either.
    third = "韩国一家餐馆的菜单引发争议，网友热议"
    src = _post("d", 3, text=third, keywords=("一家", "引发", "争议", "热议"), simhash=11, reposts=120)
    assert c.assign(src, src.created_at.timestamp()).event_id == "ev-d"
    both = c.assign(_reply("r", 4, "韩国", "菜单"), T0.timestamp() + 240)  # 韩国: b and d; 菜单: a and d
    assert both.event_id == "ev-d"  # d contains both terms: twice the weight of either other source
    neither = c.assign(_reply("s", 5, "韩国", "可怕"), T0.timestamp() + 300)
    assert neither.via == "new"  # b and d contain 韩国 equally
    # A post others reposted is a source itself: it opens its own event even when it names a source's terms.
    loud = _reply("t", 6, "猴脑", "餐馆", reposts=180)
    assert (c.assign(loud, T0.timestamp() + 360).via, c.clusters["ev-t"].anchor) == ("new", True)


def test_after_the_window_a_source_text_attracts_nothing():
    c = _warmed()
    _sources(c)
    late = c.assign(_reply("r", 45, "猴脑", "餐馆"), T0.timestamp() + 45 * 60)
    assert late.via == "new"


def test_with_parents_no_anchor_text_is_kept():
    c = Clusterer(ClusteringConfig())
    p = _post("a", 0, text=TEXT_A, keywords=KEYS_A, simhash=1, reposts=900)
    c.assign(p, p.created_at.timestamp())
    assert len(c.anchor_texts) == 0 and "anchor_texts" not in c.to_dict()
