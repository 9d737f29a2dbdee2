"""`qingfeng policy validate FILE`: load and validate a versioned policy YAML. To be written."""

from __future__ import annotations

import argparse
from pathlib import Path

from qingfeng.cli._console import CliError

__all__ = ["add_validate_arguments", "validate"]


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng policy validate`."""
    parser.add_argument("file", type=Path, metavar="FILE", help="policy YAML file")


def validate(args: argparse.Namespace) -> int:
    """Validate the policy file; returns the exit code (0 valid)."""
    raise CliError("`qingfeng policy validate` is not implemented yet", exit_code=2)
