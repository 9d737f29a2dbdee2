from __future__ import annotations

import pytest

from services.publisher.adapters.policy_yaml import (
    PolicyLoadError,
    load_channels,
    load_policies,
    load_signoff,
    load_templates,
)


def test_the_shipped_policies_are_valid() -> None:
    policies = load_policies()
    assert set(policies.signoff.chains) == {"blue", "yellow", "orange", "red"}
    assert len(policies.templates) == 5 and "mastodon-qingfeng" in policies.channels


def test_a_missing_role_names_file_line_and_field() -> None:
    text = "kind: publisher-signoff\nversion: v\nchains:\n  blue:\n    - {official_level: secretary}\n"
    with pytest.raises(PolicyLoadError) as err:
        load_signoff(text, "s.yaml")
    assert any(e.file == "s.yaml" and e.line == 5 and e.field == "chains.blue[0].role" for e in err.value.errors)


def test_every_level_needs_a_chain_and_roles_are_unique() -> None:
    text = (
        "kind: publisher-signoff\nversion: v\nchains:\n"
        "  blue: [{role: a, official_level: secretary}, {role: a, official_level: secretary}]\n"
    )
    with pytest.raises(PolicyLoadError) as err:
        load_signoff(text, "s.yaml")
    message = str(err.value)
    assert "none for yellow, orange, red" in message


def test_bad_duration_and_bad_level() -> None:
    text = (
        "kind: publisher-signoff\nversion: v\nchains:\n  purple: [{role: a, official_level: secretary}]\n"
        "clocks: {golden_period: two hours}\n"
    )
    with pytest.raises(PolicyLoadError) as err:
        load_signoff(text, "s.yaml")
    fields = {e.field for e in err.value.errors}
    assert "clocks.golden_period" in fields and any(f.startswith("chains") for f in fields)


def test_channels_limits_and_kinds_are_validated() -> None:
    text = (
        "kind: publisher-channels\nversion: v\nchannels:\n  - {id: a, kind: telegram, display_name: A, max_length: 5}\n"
    )
    with pytest.raises(PolicyLoadError) as err:
        load_channels(text, "c.yaml")
    fields = {e.field for e in err.value.errors}
    assert {"channels[0].kind", "channels[0].max_length"} <= fields
    assert all(e.line == 4 for e in err.value.errors)


def test_templates_need_every_kind() -> None:
    text = (
        "kind: publisher-templates\nversion: v\ntemplates:\n"
        "  - {id: s, kind: statement, display_name: S, title: t, body: b}\n"
    )
    with pytest.raises(PolicyLoadError, match="none for progress"):
        load_templates(text, "t.yaml")


def test_not_yaml() -> None:
    with pytest.raises(PolicyLoadError, match="not valid YAML"):
        load_signoff("a: [", "s.yaml")


def test_an_alias_bomb_is_refused_without_expanding() -> None:
    lines = ["kind: publisher-signoff", "version: v", 'a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(8)]
    with pytest.raises(PolicyLoadError, match=r"anchor|alias"):
        load_signoff("\n".join(lines) + "\n", "bomb.yaml")
