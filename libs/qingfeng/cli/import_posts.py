"""`qingfeng import FILE`: import posts from a JSONL file through the collector. To be written."""

from __future__ import annotations

import argparse
from pathlib import Path

from qingfeng.cli._console import CliError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng import`."""
    parser.add_argument("file", type=Path, metavar="FILE", help="JSONL file of posts")


def run(args: argparse.Namespace) -> int:
    """Import the file; returns the exit code."""
    raise CliError("`qingfeng import` is not implemented yet", exit_code=2)
