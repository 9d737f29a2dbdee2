"""Where the repository and the CLI's state live."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "state_dir"]


def repo_root() -> Path:
    """The checkout this CLI is installed from (editable install: libs/qingfeng/cli -> repo root).

    `QF_REPO_ROOT` overrides it; otherwise fall back to the working directory when not run from a checkout.
    """
    override = os.environ.get("QF_REPO_ROOT")
    if override:
        return Path(override).resolve()
    candidate = Path(__file__).resolve().parents[3]
    if (candidate / "pyproject.toml").is_file() and (candidate / "deploy").is_dir():
        return candidate
    return Path.cwd()


def state_dir() -> Path:
    """The suite's pid files and logs: `QF_STATE_DIR`, default `<repo root>/.qingfeng` (git-ignored)."""
    override = os.environ.get("QF_STATE_DIR")
    return Path(override).resolve() if override else repo_root() / ".qingfeng"
