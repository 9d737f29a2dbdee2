"""Policy files: the bundled ones load; invalid ones are rejected with line and field, and nothing partial."""

from __future__ import annotations

import pytest

from services.grader.adapters.policy_yaml import (
    DEFAULT_POLICY,
    THREE_TIER_POLICY,
    PolicyLoadError,
    load_policy,
    load_policy_file,
    validate_policy,
)
from services.grader.core import Grader, parse_duration

GOOD = DEFAULT_POLICY.read_text(encoding="utf-8")


def test_bundled_policies_load():
    four = load_policy_file(DEFAULT_POLICY)
    three = load_policy_file(THREE_TIER_POLICY)
    assert [lv.warning_level for lv in four.levels] == ["blue", "yellow", "orange", "red"]
    assert [lv.label for lv in three.levels] == ["一般", "较大", "重大"]
    assert (four.scheme, three.scheme) == ("four_color", "three_tier")
    assert four.cooldown_seconds == 1800 and four.golden_period_seconds == 7200
    assert four.refute_within_seconds == 86400 and four.rising.horizon_seconds == 7200
    red = four.levels[-1]
    assert (red.ack_within_seconds, red.first_response_within_seconds, red.report_to) == (
        900,
        7200,
        "municipal_committee",
    )
    assert four.levels[0].ack_next_working_day
    orange = four.level_named("orange")
    assert orange is not None and orange.at_least == 3
    assert next(c for c in orange.criteria if c.metric == "regional_scope").threshold == 2  # "provincial"


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            '24h, op: ">=", threshold: 300}',
            '24h, op: ">=", threshold: lots}',
            "levels[1].criteria[2].threshold",
            "must be a number",
        ),
        (
            'metric: comments, window: 24h, op: ">=", threshold: 300',
            'metric: comment, window: 24h, op: ">=", threshold: 300',
            "levels[1].criteria[2].metric",
            "unknown metric",
        ),
        (
            'window: 1h, op: ">=", threshold: 30}',
            'window: 2h, op: ">=", threshold: 30}',
            "levels[1].criteria[0].window",
            "declared windows",
        ),
        ('op: ">=", threshold: 30}', 'op: "=>", threshold: 30}', "levels[1].criteria[0].op", "must be one of"),
        ("match: {at_least: 3}", "match: {at_least: 9}", "levels[2].match.at_least", "between 1 and"),
        ("cooldown: 30m", "cooldown: half an hour", "cooldown", "duration"),
        ("scheme: four_color", "scheme: five_color", "scheme", "must be one of"),
        ("warning_level: orange", "warning_level: purple", "levels[2].warning_level", "must be one of"),
        ("warning_level: red", "warning_level: yellow", "levels[3].warning_level", "more severe"),
        ("ack_within: 30m", "ack_within: soon", "levels[2].ack_within", "duration"),
        ("top_authors: 5", "top_authors: 0", "top_authors", "integer >= 1"),
        ("    report_to: secretary ", "    reportto: secretary ", "levels[2].reportto", "unknown field"),
    ],
)
def test_invalid_policy_names_line_and_field(old, new, field, message):
    assert old in GOOD, old
    text = GOOD.replace(old, new, 1)
    with pytest.raises(PolicyLoadError) as err:
        load_policy(text)
    expected_line = GOOD[: GOOD.index(old)].count("\n") + 1
    found = [e for e in err.value.errors if e.field == field]
    assert found, err.value.errors
    assert found[0].line == expected_line
    assert message in found[0].message
    assert f"line {expected_line}: {field}: " in str(err.value)


def test_every_problem_is_reported_in_line_order():
    text = GOOD.replace('24h, op: ">=", threshold: 300}', '24h, op: ">=", threshold: x}', 1)
    text = text.replace("cooldown: 30m", "cooldown: never")
    errors = validate_policy(text)
    assert [e.field for e in errors] == ["cooldown", "levels[1].criteria[2].threshold"]
    assert errors[0].line < errors[1].line


def test_three_tier_scheme_cannot_grade_red():
    text = THREE_TIER_POLICY.read_text(encoding="utf-8").replace("warning_level: orange", "warning_level: red")
    (error,) = validate_policy(text)
    assert error.field == "levels[2].warning_level" and "three_tier" in error.message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("kind: grading-policy\nname: [unclosed\n", 3, "not valid YAML"),
        ("", 1, "empty"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("kind: grading-policy\nname: a\nname: b\n", 3, "given twice"),
    ],
)
def test_malformed_documents(text, line, message):
    with pytest.raises(PolicyLoadError) as err:
        load_policy(text)
    assert err.value.errors[0].line == line
    assert message in str(err.value)


def test_missing_fields_point_at_their_parent():
    text = "kind: grading-policy\nname: x\nversion: '1'\nscheme: four_color\nwindows: [1h]\nlevels:\n  - name: a\n"
    errors = validate_policy(text)
    assert ("levels[0].warning_level", 7) in [(e.field, e.line) for e in errors]


def test_a_rejected_policy_leaves_the_active_one_in_place(four_level):
    grader = Grader(four_level)
    with pytest.raises(PolicyLoadError):
        grader.set_policy(load_policy(GOOD.replace("threshold: 300}", "threshold: x}")))
    assert grader.policy is four_level


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h30m", 5400),
        ("2d", 172800),
        (45, 45),
        ("1.5h", 5400),
        ("h", None),
        ("-1m", None),
        (True, None),
        ("", None),
        ("10 m", 600),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


def test_a_missing_top_level_field_is_reported_without_hanging() -> None:
    # Locating the line of a field absent from the document once looped forever; it must fall back to the document.
    from services.grader.adapters.policy_yaml import PolicyLoadError, load_policy

    with pytest.raises(PolicyLoadError) as err:
        load_policy("scheme: four_color\nlevels: []\n", "p.yaml")
    fields = {e.field for e in err.value.errors}
    assert {"version", "levels"} <= fields
    assert all(e.line >= 1 for e in err.value.errors)
