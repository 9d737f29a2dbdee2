"""``python -m services.grader.validate_policy FILE``: check a grading policy YAML from the shell.

Prints ``OK <scheme> <version>: N levels`` and exits 0, or one line per problem, ``FILE:LINE: field: message``
(compilers' format, so editors can jump to it), and exits 1. An unreadable file exits 1 too; bad usage exits 2.
``qingfeng policy validate FILE`` runs this module (the CLI lives in libs, which must not import a service).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from services.grader.adapters.policy_yaml import PolicyError, PolicyLoadError, load_policy

__all__ = ["format_error", "main"]


def format_error(path: str, error: PolicyError) -> str:
    """``FILE:LINE: field: message`` (``FILE: message`` when the problem has no line)."""
    where = f"{path}:{error.line}" if error.line else path
    what = f"{error.field}: {error.message}" if error.field else error.message
    return f"{where}: {what}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m services.grader.validate_policy FILE", file=sys.stderr)
        return 2
    path = args[0]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        print(f"{path}: cannot read: {err}", file=sys.stderr)
        return 1
    try:
        policy = load_policy(text, path)
    except PolicyLoadError as err:
        for error in err.errors:
            print(format_error(path, error))
        return 1
    print(f"OK {policy.scheme} {policy.version}: {len(policy.levels)} levels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
