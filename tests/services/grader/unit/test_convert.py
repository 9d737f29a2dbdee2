"""Wire <-> core conversion: Post -> PostView, snapshots/alerts -> protobuf, and the events-index document."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format
from qingfeng.v1 import common_pb2, event_pb2, post_pb2

from gateway.documents import event_from_source
from services.grader.adapters.policy_yaml import DEFAULT_POLICY, THREE_TIER_POLICY, load_policy_file
from services.grader.convert import (
    InvalidPost,
    RegionNames,
    alert_proto,
    event_document,
    event_proto,
    level_enum,
    level_name,
    post_view,
    reason_proto,
)
from services.grader.core import Alert, EventSnapshot, Grader, PostView, Reason

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 2, tzinfo=UTC)
W = common_pb2.WarningLevel


def _post(**fields: object) -> post_pb2.Post:
    post = post_pb2.Post(id="jsonl:src:1", source_id="src", platform="weibo.com", **fields)  # type: ignore[arg-type]
    if not post.HasField("created_at"):
        post.created_at.FromDatetime(T0)
    return post


def test_post_view_takes_what_grading_needs() -> None:
    post = _post(
        source_kind=common_pb2.SOURCE_KIND_WEIBO_API,
        author=post_pb2.Author(id="u1", followers=1234, is_media=True),
        title="",
        text="原文",
        text_simplified="简体原文",
        keywords=["局长", "受贿"],
        parent_id="jsonl:src:0",
        root_id="jsonl:src:r",
        reposts=3,
        comments=4,
        likes=5,
        enrichment=post_pb2.Enrichment(
            regions=[common_pb2.Region(code="330100", name="杭州市")],
            offline_signals=[post_pb2.OfflineSignal(term="聚集", planned=True), post_pb2.OfflineSignal(term="静坐")],
            relevance=0.9,
        ),
        dedupe=post_pb2.Dedupe(simhash=0xABC),
    )
    view = post_view(post)
    assert view == PostView(
        id="jsonl:src:1",
        created_at=T0,
        author_id="weibo.com:u1",
        author_followers=1234,
        author_is_media=True,
        source_kind="weibo_api",
        platform="weibo.com",
        text="简体原文",
        keywords=("局长", "受贿"),
        simhash=0xABC,
        parent_id="jsonl:src:0",
        root_id="jsonl:src:r",
        reposts=3,
        comments=4,
        likes=5,
        region_codes=("330100",),
        offline_signals=("聚集", "静坐"),
        offline_planned=True,
        relevance=0.9,
    )
    assert view.created_at.tzinfo is not None


def test_a_duplicate_is_passed_on_as_text_evidence_not_as_a_parent() -> None:
    dup = _post(dedupe=post_pb2.Dedupe(duplicate_of="jsonl:src:0"))
    assert (post_view(dup).duplicate_of, post_view(dup).parent_id, post_view(dup).root_id) == (
        "jsonl:src:0",
        None,
        None,
    )
    both = _post(parent_id="jsonl:src:p", dedupe=post_pb2.Dedupe(duplicate_of="jsonl:src:0"))
    assert (post_view(both).parent_id, post_view(both).root_id) == ("jsonl:src:p", None)
    assert post_view(_post()).simhash is None and post_view(_post()).duplicate_of is None


def test_event_time_falls_back_to_collection_time_and_a_post_without_either_is_invalid() -> None:
    post = post_pb2.Post(id="x")
    post.collected_at.FromDatetime(T0 + timedelta(hours=1))
    assert post_view(post).created_at == T0 + timedelta(hours=1)
    with pytest.raises(InvalidPost):
        post_view(post_pb2.Post(id="x"))
    with pytest.raises(InvalidPost):
        post_view(post_pb2.Post())


def test_an_article_title_is_the_headline_candidate() -> None:
    assert post_view(_post(title="标题", text_simplified="标题 正文")).text == "标题"


def test_levels_map_both_ways() -> None:
    for name in ("none", "blue", "yellow", "orange", "red"):
        assert level_name(level_enum(name)) == name
    assert level_enum("red") == W.WARNING_LEVEL_RED
    assert level_name(W.WARNING_LEVEL_UNSPECIFIED) is None


def test_reasons_carry_operator_level_and_window() -> None:
    r = reason_proto(Reason("posts", 120.0, 100.0, ">=", "yellow", "1h"))
    assert (r.op, r.level, r.window.seconds) == (common_pb2.COMPARISON_OPERATOR_GE, W.WARNING_LEVEL_YELLOW, 3600)
    assert r.message == "1小时内帖子数 120 ≥ 100"
    total = reason_proto(Reason("posts", 3.0, 3.0, ">=", "blue", "total"))
    assert not total.HasField("window")
    note = reason_proto(Reason("override", 4.0, 1.0, "", "orange", note="人工调整"))
    assert note.op == common_pb2.COMPARISON_OPERATOR_UNSPECIFIED and note.message == "人工调整"


def _graded(policy_path: object = DEFAULT_POLICY) -> tuple[Grader, list[EventSnapshot], list[Alert]]:
    grader = Grader(load_policy_file(policy_path))  # type: ignore[arg-type]
    posts = [PostView("p0", T0, author_id="u0", author_followers=900_000, region_codes=("330100",), text="某局长违规")]
    posts += [
        PostView(
            f"p{i}",
            T0 + timedelta(seconds=6 * i),
            author_id=f"u{i}",
            parent_id="p0",
            comments=40,
            author_is_media=i == 30,
            region_codes=("330200",),
        )
        for i in range(1, 120)
    ]
    outs = grader.process_batch(posts)
    return (
        grader,
        [o for o in outs if isinstance(o, EventSnapshot)],
        [o for o in outs if isinstance(o, Alert)],
    )


def test_event_and_alert_protos() -> None:
    _grader, snapshots, alerts = _graded()
    names = RegionNames()
    names.note([common_pb2.Region(code="330100", name="杭州市")])
    event = event_proto(snapshots[-1], names, NOW)
    assert event.id == "ev-p0" and event.level == W.WARNING_LEVEL_ORANGE == event.grade.level
    assert event.grade.scheme == common_pb2.LEVEL_SCHEME_FOUR_COLOR and event.grade.reasons
    regions = {r.code: r.name for r in event.regions}
    assert regions == {"330200": "", "330100": "杭州市"}  # names as the collector's enrichment gave them
    assert [m.window.seconds for m in event.metrics] == [600, 3600, 86400, 0]  # shortest first, then the whole life
    assert event.post_count == 120 and event.updated_at.ToDatetime(tzinfo=UTC) == NOW
    alert = alert_proto(alerts[-1], names, NOW)
    assert alert.id == f"ev-p0:{alert.sequence}" and alert.to_level == W.WARNING_LEVEL_ORANGE
    assert alert.from_level == W.WARNING_LEVEL_YELLOW and alert.reasons and alert.event_title
    assert alert.grade.level == alert.to_level
    assert not alert.HasField("corruption_relevance"), "unknown unless the snapshot gave it"
    total = snapshots[-1].window("total")
    assert total is not None and event.metrics[-1].relevance == pytest.approx(total.relevance)
    with_relevance = alert_proto(alerts[-1], names, NOW, relevance=total.relevance)
    assert with_relevance.corruption_relevance == pytest.approx(total.relevance)
    # The rising flag of the grade travels with the change (the level history shows it).
    assert not alert.rising and not alerts[-1].grade.rising
    rising = replace(alerts[-1], grade=replace(alerts[-1].grade, rising=True))
    assert alert_proto(rising, names, NOW).rising


def test_three_tier_grades_carry_their_tier() -> None:
    _, snapshots, _ = _graded(THREE_TIER_POLICY)
    event = event_proto(snapshots[-1], RegionNames(), NOW)
    assert event.grade.scheme == common_pb2.LEVEL_SCHEME_THREE_TIER
    assert event.grade.tier == common_pb2.THREE_TIER_LEVEL_SERIOUS and event.grade.label == "重大"


def test_override_and_cool_down_appear_on_the_grade() -> None:
    grader, _, _ = _graded()
    outs = grader.override("ev-p0", "red", "领导批示", "alice", NOW, T0 + timedelta(days=1))
    snapshot = next(o for o in outs if isinstance(o, EventSnapshot))
    grade = event_proto(snapshot, RegionNames(), NOW).grade
    assert grade.override.level == W.WARNING_LEVEL_RED and grade.override.reason == "领导批示"
    assert grade.override.actor.id == "alice" and grade.override.HasField("expires_at")


def test_the_index_document_reads_back_as_the_same_event_in_the_gateway() -> None:
    grader, _snapshots, _ = _graded()
    grader.override("ev-p0", "red", "领导批示", "alice", NOW)
    snapshot = grader.event("ev-p0")
    assert snapshot is not None
    event = event_proto(snapshot, RegionNames(), NOW)
    doc = event_document(event)
    assert event_from_source(doc) == event
    # Same content as the standard proto-JSON of the message (ours writes numbers for int64, which it accepts).
    parsed = json_format.ParseDict(
        {k: v for k, v in doc.items() if k in event_pb2.Event.DESCRIPTOR.fields_by_name}, event_pb2.Event()
    )
    assert parsed == event
    assert doc["level"] == "WARNING_LEVEL_RED" and doc["scheme"] == "LEVEL_SCHEME_FOUR_COLOR"
    assert doc["policy_version"] == "four-level.v4" and doc["reasons"][0].startswith("人工调整")
    assert set(doc["region_codes"]) == {"330100", "330200"}
    assert doc["velocity"] == event.metrics[0].velocity and doc["comments"] == event.metrics[-1].comments
    assert "merged_into" not in doc


def test_a_merged_event_document_says_where_it_went() -> None:
    event = event_pb2.Event(id="ev-a", merged_into="ev-b", level=W.WARNING_LEVEL_BLUE)
    doc = event_document(event)
    assert doc["merged_into"] == "ev-b" and event_from_source(doc).merged_into == "ev-b"
