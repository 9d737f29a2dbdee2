"""``python -m services.publisher.validate_policy FILE``: check a publisher policy YAML from the shell.

The file's ``kind`` says which policy it is: ``publisher-templates``, ``publisher-signoff`` or ``publisher-channels``.
Prints ``OK <kind> <version>: …`` and exits 0, or one line per problem, ``FILE:LINE: field: message``, and exits 1.
An unreadable file exits 1 too; bad usage exits 2. ``qingfeng policy validate FILE`` runs this module for files whose
kind starts with ``publisher-`` (the CLI lives in libs, which must not import a service).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from qingfeng.safe_yaml import SafeYamlError, load_yaml

from services.publisher.adapters.policy_yaml import PolicyLoadError, load_channels, load_signoff, load_templates

__all__ = ["main"]


def _summary(kind: str, text: str, path: str) -> str:
    if kind == "publisher-templates":
        templates, _ = load_templates(text, path)
        return f"{len(templates)} templates"
    if kind == "publisher-signoff":
        policy = load_signoff(text, path)
        chains = ", ".join(f"{level} {len(steps)}" for level, steps in policy.chains.items())
        return f"sign-off steps by level: {chains}"
    channels, checks = load_channels(text, path)
    enabled = sum(1 for c in channels.values() if c.enabled)
    return f"{len(channels)} channels ({enabled} enabled), {len(checks.forbidden_words)} forbidden words"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m services.publisher.validate_policy FILE", file=sys.stderr)
        return 2
    path = args[0]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        print(f"{path}: cannot read: {err}", file=sys.stderr)
        return 1
    try:
        head = load_yaml(text, source=path)
    except SafeYamlError:
        head = None
    kind = head.get("kind") if isinstance(head, dict) else None
    if kind not in ("publisher-templates", "publisher-signoff", "publisher-channels"):
        print(f"{path}:1: kind: must be publisher-templates, publisher-signoff or publisher-channels, not {kind!r}")
        return 1
    try:
        summary = _summary(str(kind), text, path)
    except PolicyLoadError as err:
        for error in err.errors:
            print(error)
        return 1
    print(f"OK {kind} {head['version']}: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
