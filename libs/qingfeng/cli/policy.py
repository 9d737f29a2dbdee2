"""`qingfeng policy validate FILE`: load and validate a versioned grading policy YAML.

The policy model belongs to the grader, and libs never import a service: the command runs
`python -m services.grader.validate_policy FILE` with this interpreter from the repository root and relays its
output and exit code (0 valid, 1 invalid or unreadable).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from qingfeng.cli._console import CliError
from qingfeng.cli.paths import repo_root

__all__ = ["add_validate_arguments", "validate"]

_MODULE = "services.grader.validate_policy"
_COORDINATOR_MODULE = "services.coordinator.validate_policy"
_PUBLISHER_MODULE = "services.publisher.validate_policy"


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng policy validate`."""
    parser.add_argument("file", type=Path, metavar="FILE", help="policy YAML file")


def _module_for(target: str) -> str:
    """The coordinator validates its own kinds (routing, playbooks, directory); every other file is a grading policy."""
    try:
        head = Path(target).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return _MODULE  # the grader's validator reports the unreadable file
    if re.search(r"^kind:\s*[\"']?coordinator-", head, re.MULTILINE):
        return _COORDINATOR_MODULE
    if re.search(r"^kind:\s*[\"']?publisher-", head, re.MULTILINE):
        return _PUBLISHER_MODULE
    return _MODULE


def validate(args: argparse.Namespace) -> int:
    """Validate the policy file; returns the exit code (0 valid, 1 invalid)."""
    root = repo_root()
    if not (root / "services" / "grader" / "validate_policy.py").is_file():
        raise CliError(f"no grader service under {root} (set QF_REPO_ROOT to the checkout)", exit_code=2)
    # The path as the user gave it, resolved against their working directory (the child runs in the repo root).
    path: Path = args.file
    target = str(path if path.is_absolute() else (Path.cwd() / path))
    result = subprocess.run(
        [sys.executable, "-m", _module_for(target), target],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    shown = result.stdout.replace(target, str(path))
    if shown:
        sys.stdout.write(shown)
    if result.stderr:
        sys.stderr.write(result.stderr.replace(target, str(path)))
    return result.returncode
