"""The `qingfeng` argument parser and its placeholders for commands still to be written."""

from __future__ import annotations

import pytest
from qingfeng.cli.main import build_parser, main


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["demo"], "demo"),
        (["import", "posts.jsonl"], "import"),
        (["policy", "validate", "grading.yaml"], "policy validate"),
    ],
)
def test_unwritten_commands_fail_clearly_with_exit_2(
    argv: list[str], command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert f"`qingfeng {command}` is not implemented yet" in capsys.readouterr().err


def test_stack_needs_an_action() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["stack"])
    assert exit_info.value.code == 2


def test_stack_options_parse() -> None:
    args = build_parser().parse_args(["stack", "down", "--wipe"])
    assert (args.command, args.action, args.wipe) == ("stack", "down", True)
    args = build_parser().parse_args(["stack", "status", "--json"])
    assert args.json is True
