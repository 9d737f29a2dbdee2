"""Drafts from templates, and the difference between two versions of a draft.

A template's ``{placeholder}`` is filled from the case's facts. A fact that is missing leaves a visible marker,
``【待补充：name】``, rather than failing: a coordinator request with partial facts still becomes a draft a person can
complete, and the checks before publishing refuse any text that still holds a marker.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from services.publisher.core.model import Version
from services.publisher.core.policy import Template

__all__ = ["MISSING_MARK", "diff_versions", "fill", "placeholders"]

_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")
MISSING_MARK = "【待补充："


def placeholders(text: str) -> list[str]:
    """The placeholder names in ``text``, in order, each once."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text)))


def _fill_one(text: str, facts: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        given = facts.get(name, "").strip()
        return given if given else f"{MISSING_MARK}{name}】"

    return _PLACEHOLDER.sub(value, text)


def fill(template: Template, facts: Mapping[str, str]) -> tuple[str, str]:
    """(title, body) of the template with the facts in place."""
    return _fill_one(template.title, facts), _fill_one(template.body, facts)


def diff_versions(old: Version, new: Version) -> str:
    """A unified diff of two versions (title first, then the body), sentence by sentence.

    Chinese releases are often one paragraph: the body is split after each 。！？ so a changed sentence shows alone.
    """

    def lines(v: Version) -> list[str]:
        sentences = [s for s in re.split(r"(?<=[。！？\n])", v.body) if s.strip()]
        return [f"标题：{v.title}"] + [s.strip("\n") for s in sentences]

    return "\n".join(
        difflib.unified_diff(
            lines(old),
            lines(new),
            fromfile=f"revision {old.revision}",
            tofile=f"revision {new.revision}",
            lineterm="",
        )
    )
