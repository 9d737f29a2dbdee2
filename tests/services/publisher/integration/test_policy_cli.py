"""`qingfeng policy validate FILE` on the publisher's policies: the shipped ones pass, a broken one names the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.publisher.adapters.policy_yaml import CHANNELS_FILE, SIGNOFF_FILE, TEMPLATES_FILE


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qingfeng.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (SIGNOFF_FILE, "OK publisher-signoff signoff.v1: sign-off steps by level: blue 1, yellow 2, orange 3, red 4"),
        (TEMPLATES_FILE, "OK publisher-templates templates.v1: 5 templates"),
        (CHANNELS_FILE, "OK publisher-channels channels.v1: 4 channels"),
    ],
)
def test_shipped_policies_are_valid(policy: Path, expected: str, tmp_path: Path) -> None:
    done = _cli("policy", "validate", str(policy), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(expected)


def test_a_broken_signoff_fails_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "signoff.yaml"
    bad.write_text("kind: publisher-signoff\nversion: v2\nchains:\n  blue:\n    - {role: 主任}\n", encoding="utf-8")
    done = _cli("policy", "validate", "signoff.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "signoff.yaml:5: chains.blue[0].official_level: Field required" in done.stdout
