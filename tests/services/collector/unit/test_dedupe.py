from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.collector.core.dedupe import DedupeConfig, DedupeKind, Deduper

T0 = datetime(2013, 4, 20, 8, 0, tzinfo=UTC)
ORIGINAL = (
    "【湖南司法厅副厅长儿子婚宴“警车门”调查】“宴席赛过皇宫，20辆警车助阵，百万礼金入囊”，这是近日网络盛传的湖南省"
    "司法厅副厅长王某儿子婚宴景象。记者调查发现，婚宴当天确有多辆警车出现在酒店门口，当地纪委已介入调查。"
)
OTHER = "【春运首日】全国铁路今日发送旅客八百万人次，各地车站秩序井然，铁路部门提醒旅客提前安排行程，注意防寒保暖。"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    "copy",
    [
        ORIGINAL,
        ORIGINAL + " http://t.cn/RzAbCd",  # link appended
        "//@网友甲:" + ORIGINAL,  # repost chain kept in the text
        "@人民日报 " + ORIGINAL + "[怒][怒]",  # mention and emoticons
        ORIGINAL.replace("，", ",").replace("。", "."),  # punctuation swapped
        ORIGINAL.replace("湖南省司法厅副厅长", "湖南省司法廳副廳長"),  # partly traditional
        "转发微博 " + ORIGINAL,
    ],
)
def test_exact_after_normalisation(copy: str) -> None:
    deduper = Deduper()
    first = deduper.check("p1", ORIGINAL, at(0))
    result = deduper.check("p2", copy, at(1))
    assert first.kind is DedupeKind.NEW
    assert result.kind is DedupeKind.EXACT
    assert result.duplicate_of == "p1"
    assert result.content_hash == first.content_hash
    assert result.simhash == first.simhash
    assert result.distance == 0


@pytest.mark.parametrize(
    "edited",
    [
        "#关注# " + ORIGINAL,
        ORIGINAL.replace("20辆", "二十辆"),
        ORIGINAL + "太过分了！",
    ],
)
def test_near_duplicate_of_a_slightly_edited_copy(edited: str) -> None:
    deduper = Deduper()
    first = deduper.check("p1", ORIGINAL, at(0))
    result = deduper.check("p2", edited, at(5))
    assert result.kind is DedupeKind.NEAR
    assert result.duplicate_of == "p1"
    assert result.distance is not None and 0 < result.distance <= 3
    assert result.content_hash != first.content_hash
    assert result.is_duplicate


def test_different_posts_are_distinct() -> None:
    deduper = Deduper()
    assert deduper.check("p1", ORIGINAL, at(0)).kind is DedupeKind.NEW
    second = deduper.check("p2", OTHER, at(1))
    assert second.kind is DedupeKind.NEW
    assert second.duplicate_of is None and not second.is_duplicate
    assert len(deduper) == 2


@pytest.mark.parametrize(
    "text", ["", "转发微博", "顶", "呸！人渣", "[怒] [抓狂]", "http://t.cn/abc", "哈哈哈哈哈哈哈哈哈哈哈"]
)
def test_short_texts_are_never_merged(text: str) -> None:
    deduper = Deduper()
    results = [deduper.check(f"p{i}", text, at(i)) for i in range(3)]
    assert {r.kind for r in results} == {DedupeKind.TOO_SHORT}
    assert all(r.duplicate_of is None and r.simhash is None for r in results)
    assert len(deduper) == 0


def test_distinct_characters_are_counted_over_the_whole_text_not_only_its_head() -> None:
    deduper = Deduper()
    laughing = "哈" * 200 + "呵" * 200
    assert deduper.check("p1", laughing, at(0)).kind == DedupeKind.TOO_SHORT, "long, but two distinct characters"
    late_words = "哈" * 100 + "记得要和他合照哦，真是太可爱了"
    assert deduper.check("p2", late_words, at(1)).kind == DedupeKind.NEW, "the words after the head count"


def test_laughing_replies_are_not_near_duplicates() -> None:
    deduper = Deduper()
    first = deduper.check("p1", "哈哈哈哈哈哈哈哈哈哈记得要和他合照哦", at(0))
    second = deduper.check("p2", "哈哈哈哈哈哈哈哈哈哈哈哈哈好可爱啊", at(1))
    assert (first.kind, second.kind) == (DedupeKind.NEW, DedupeKind.NEW)


def test_copies_link_to_the_original_not_to_a_copy() -> None:
    deduper = Deduper()
    deduper.check("orig", ORIGINAL, at(0))
    deduper.check("copy1", "#关注# " + ORIGINAL, at(1))
    third = deduper.check("copy2", "#关注# " + ORIGINAL, at(2))
    assert (third.kind, third.duplicate_of) == (DedupeKind.NEAR, "orig")


def test_replayed_post_gets_its_first_answer() -> None:
    deduper = Deduper()
    first = deduper.check("p1", ORIGINAL, at(0))
    assert deduper.check("p1", ORIGINAL, at(0)) == first  # not "an exact duplicate of itself"
    copy = deduper.check("p2", ORIGINAL, at(1))
    assert deduper.check("p2", ORIGINAL, at(1)) == copy


def test_size_bound_evicts_least_recently_matched() -> None:
    deduper = Deduper(DedupeConfig(max_entries=2))
    posts = [ORIGINAL, OTHER, "第三条完全不同的新闻内容，关于城市交通拥堵治理的新举措和市民反响。"]
    deduper.check("a", posts[0], at(0))
    deduper.check("b", posts[1], at(1))
    deduper.check("a-copy", posts[0], at(2))  # touches "a": now "b" is the least recently matched
    deduper.check("c", posts[2], at(3))  # evicts "b"
    assert len(deduper) == 2
    assert deduper.check("a-copy2", posts[0], at(4)).duplicate_of == "a"
    assert deduper.check("b-copy", posts[1], at(5)).kind is DedupeKind.NEW  # "b" was forgotten; evicts "c"
    assert deduper.check("c-copy", posts[2], at(6)).kind is DedupeKind.NEW
    assert len(deduper) == 2


def test_age_bound_evicts_old_originals() -> None:
    deduper = Deduper(DedupeConfig(max_age=timedelta(hours=1)))
    deduper.check("old", ORIGINAL, at(0))
    for i in range(1100):  # the age sweep runs every 1024 posts
        deduper.check(f"filler{i}", "", at(120))
    assert len(deduper) == 0
    assert deduper.check("late-copy", ORIGINAL, at(121)).kind is DedupeKind.NEW


def test_recent_match_keeps_an_original_alive() -> None:
    deduper = Deduper(DedupeConfig(max_age=timedelta(hours=1)))
    deduper.check("old", ORIGINAL, at(0))
    deduper.check("copy", ORIGINAL, at(50))
    for i in range(1100):
        deduper.check(f"filler{i}", "", at(100))
    assert deduper.check("copy2", ORIGINAL, at(101)).duplicate_of == "old"


def test_remembered_answers_are_bounded() -> None:
    deduper = Deduper(DedupeConfig(max_remembered=2))
    first = deduper.check("p1", ORIGINAL, at(0))
    deduper.check("p2", "", at(1))
    deduper.check("p3", "", at(2))
    # Its answer is forgotten, but the window still knows it as its own original: not a duplicate of itself.
    assert deduper.check("p1", ORIGINAL, at(3)) == first


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Deduper().check("p1", ORIGINAL, datetime(2013, 1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_distance": 4}, {"max_entries": 0}, {"min_chars": 0}, {"max_age": timedelta(0)}, {"bands": 3}],
)
def test_invalid_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Deduper(DedupeConfig(**kwargs))  # type: ignore[arg-type]
