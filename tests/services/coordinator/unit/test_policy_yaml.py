"""Policy files: the bundled ones load; errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.coordinator.adapters.policy_yaml import POLICY_DIR, PolicyFileError, load_routing, validate_file
from services.coordinator.validate_policy import main


@pytest.mark.parametrize("name", ["routing.yaml", "routing_three_tier.yaml", "playbooks.yaml", "directory.yaml"])
def test_bundled_files_are_valid(name: str) -> None:
    assert validate_file(POLICY_DIR / name).startswith("OK coordinator-")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            "ack_within: 15m, emergency_meeting: automatic",
            "ack_within: soon, emergency_meeting: automatic",
            "levels.red.ack_within",
        ),
        ("threshold: 0.5", "threshold: 1.5", "corruption.threshold"),
        ("route_to: municipal_committee", "route_to: mayor", "levels.red.route_to"),
        ("refute_within: 24h", "refute_within: 1 day", "clocks.refute_within"),
        ("scheme: four_color", "scheme: three_tier", "levels"),
        ("  remind_every: 4h", "  remind_every: 4h\n  surprise: 1", "supervision.surprise"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = (POLICY_DIR / "routing.yaml").read_text(encoding="utf-8")
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_routing(bad)
    assert str(bad) in str(caught.value)
    assert any(f.startswith(field) for f, _ in caught.value.errors), caught.value.errors


def test_severity_must_not_go_down_the_ladder(tmp_path: Path) -> None:
    text = (POLICY_DIR / "routing.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "r.yaml"
    bad.write_text(text.replace("route_to: municipal_committee", "route_to: opinion_office"), encoding="utf-8")
    with pytest.raises(PolicyFileError, match="lower rung"):
        load_routing(bad)


def test_module_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(POLICY_DIR / "playbooks.yaml")]) == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("kind: coordinator-playbooks\nversion: x\nplaybooks: {verified_true: {tasks: [{step: a}]}}\n")
    assert main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "playbooks.verified_true.tasks.0.agency" in out
    assert main([]) == 2


def test_an_alias_bomb_is_refused_without_expanding(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(PolicyFileError, match=r"anchor|alias"):
        load_routing(bomb)
