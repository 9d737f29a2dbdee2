"""`qingfeng demo`: a short replay of ../shared/data through the running suite. To be written."""

from __future__ import annotations

import argparse

from qingfeng.cli._console import CliError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng demo` (none yet)."""


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    raise CliError("`qingfeng demo` is not implemented yet", exit_code=2)
