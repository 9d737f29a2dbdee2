"""`qingfeng policy validate FILE` from the shell: the bundled policies pass, a broken one fails with lines.

Runs the real CLI in a subprocess (it runs the grader's validator in another one); needs no stack.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, THREE_TIER_POLICY


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qingfeng.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (DEFAULT_POLICY, "OK four_color four-level.v4: 4 levels"),
        (THREE_TIER_POLICY, "OK three_tier three-tier.v1: 3 levels"),
    ],
)
def test_bundled_policies_are_valid(policy: Path, expected: str, tmp_path: Path) -> None:
    result = _cli("policy", "validate", str(policy), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_a_broken_policy_fails_with_file_line_field_and_message(tmp_path: Path) -> None:
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    text = text.replace("threshold: 144}", "threshold: fast}").replace("scheme: four_color", "scheme: rainbow")
    (tmp_path / "broken.yaml").write_text(text, encoding="utf-8")
    result = _cli("policy", "validate", "broken.yaml", cwd=tmp_path)  # a path relative to the caller's directory
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    numbered = text.splitlines()
    scheme_line = next(i for i, line in enumerate(numbered, 1) if line.startswith("scheme:"))
    threshold_line = next(i for i, line in enumerate(numbered, 1) if "threshold: fast" in line)
    assert f"broken.yaml:{scheme_line}: scheme: must be one of four_color, three_tier" in lines
    assert f"broken.yaml:{threshold_line}: levels[2].criteria[0].threshold: must be a number" in lines


def test_a_policy_without_version_or_levels_is_reported_not_hung(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("kind: grading-policy\nname: x\n", encoding="utf-8")
    result = _cli("policy", "validate", "empty.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "empty.yaml:1: version: is required" in result.stdout.splitlines()


def test_a_missing_file_fails(tmp_path: Path) -> None:
    result = _cli("policy", "validate", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "cannot read" in result.stderr
