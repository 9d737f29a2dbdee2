from __future__ import annotations

from datetime import UTC, datetime

from services.publisher.adapters.policy_yaml import load_policies
from services.publisher.core.model import Kind, Version
from services.publisher.core.texts import diff_versions, fill, placeholders

POLICIES = load_policies()
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_every_kind_has_a_template() -> None:
    assert {POLICIES.template_for(k).kind for k in Kind} == set(Kind)  # type: ignore[union-attr]


def test_fill_with_facts_and_defaults() -> None:
    template = POLICIES.templates["refutation.v1"]
    facts = {**POLICIES.template_defaults, "事件": "某局长被带走", "核查结论": "该局长正常上班"}
    title, body = fill(template, facts)
    assert title == "关于网传“某局长被带走”的说明"
    assert "经市纪委监委核查，该局长正常上班。" in body
    assert "{" not in title + body


def test_missing_facts_leave_a_visible_marker() -> None:
    _, body = fill(POLICIES.templates["refutation.v1"], {"事件": "x"})
    assert "【待补充：核查结论】" in body and "【待补充：发布单位】" in body


def test_placeholders_in_order_once() -> None:
    assert placeholders("{a}和{b}，{a}") == ["a", "b"]


def test_diff_shows_the_changed_sentence_only() -> None:
    old = Version(1, "通报", "第一句。第二句。第三句。", "w", NOW)
    new = Version(2, "通报", "第一句。第二句改了。第三句。", "w", NOW)
    diff = diff_versions(old, new)
    assert "--- revision 1" in diff and "+++ revision 2" in diff
    assert "-第二句。" in diff and "+第二句改了。" in diff
    assert "-第一句。" not in diff and "-第三句。" not in diff


def test_diff_of_identical_versions_is_empty() -> None:
    v = Version(1, "t", "b。", "w", NOW)
    assert diff_versions(v, v) == ""
