"""The `qingfeng` command line: local stack, suite processes, demo and tools. Entry point: `main`."""

from qingfeng.cli.main import main

__all__ = ["main"]
