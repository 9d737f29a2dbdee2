"""Progress lines on stderr and the one error type the CLI turns into an exit code.

Results (status tables, JSON) go to stdout; everything a person watches while waiting goes to stderr,
so `qingfeng stack status --json | jq` stays clean.
"""

from __future__ import annotations

import sys
from pathlib import Path


class CliError(Exception):
    """A failure the user can act on: printed without a traceback, exits with `exit_code`."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(scope: str, message: str) -> None:
    """Print one progress line on stderr, flushed at once so it shows while a server starts."""
    print(f"[{scope}] {message}", file=sys.stderr, flush=True)


def tail(path: Path, *, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or a note that it does not exist yet."""
    try:
        with path.open("rb") as handle:
            # Logs can be large: read only the end.
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log yet at {path})"
    kept = data.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept) or f"(empty log {path})"
