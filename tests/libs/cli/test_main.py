"""The `qingfeng` argument parser and its dispatch."""

from __future__ import annotations

import pytest
from qingfeng.cli.main import build_parser, main


def test_import_of_a_missing_file_fails_clearly_with_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "posts.jsonl"
    assert main(["import", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_demo_options_parse() -> None:
    args = build_parser().parse_args(["demo", "--limit", "100", "--data", "/tmp/data"])
    assert (args.command, args.limit, str(args.data)) == ("demo", 100, "/tmp/data")


def test_stack_needs_an_action() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["stack"])
    assert exit_info.value.code == 2


def test_stack_options_parse() -> None:
    args = build_parser().parse_args(["stack", "down", "--wipe"])
    assert (args.command, args.action, args.wipe) == ("stack", "down", True)
    args = build_parser().parse_args(["stack", "status", "--json"])
    assert args.json is True
