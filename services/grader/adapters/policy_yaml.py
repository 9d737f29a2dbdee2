"""Load and validate a grading policy from YAML, with errors that name the line and the field.

The text is composed (not loaded) so every value keeps its position; the plain data then goes through
the core's `parse_policy`, whose field paths are mapped back to lines:

    line 12: levels[1].criteria[0].threshold: must be a number

Loading either returns a complete Policy or raises PolicyLoadError: never anything partial, so the
caller's active policy stays in place when a new one is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from qingfeng.safe_yaml import SafeYamlError, compose_yaml

from services.grader.core.policy import Policy, PolicyInvalid, parse_policy

__all__ = [
    "DEFAULT_POLICY",
    "MAX_POLICY_BYTES",
    "POLICY_DIR",
    "THREE_TIER_POLICY",
    "PolicyError",
    "PolicyLoadError",
    "load_policy",
    "load_policy_file",
    "validate_policy",
]

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_POLICY = POLICY_DIR / "four_level.v1.yaml"
THREE_TIER_POLICY = POLICY_DIR / "three_level.v1.yaml"
# A real policy is ~5 KB; the limit bounds parsing time on the consumer's event loop (PyYAML's pure-Python parser
# takes about 1 s for 256 KB of dense YAML here, about 0.25 s for 64 KB).
MAX_POLICY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One problem, placed in the file (line and column are 1-based; 0 when unknown)."""

    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.field}: {self.message}" if self.field else f"{where}{self.message}"


class PolicyLoadError(ValueError):
    """The YAML is not a valid policy; `errors` lists every problem in line order."""

    def __init__(self, errors: list[PolicyError], source: str = "") -> None:
        self.errors = tuple(sorted(errors, key=lambda e: (e.line, e.column, e.field)))
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "invalid policy\n" + "\n".join(str(e) for e in self.errors))


def load_policy(text: str, source: str = "") -> Policy:
    """Parse and validate policy YAML text; raises PolicyLoadError listing every problem."""
    try:
        # The refusing loader: no anchors/aliases (a 500-byte alias bomb froze the event loop), size-limited.
        node = compose_yaml(text, source=source or "<policy>", max_bytes=MAX_POLICY_BYTES)
    except SafeYamlError as exc:
        raise PolicyLoadError([PolicyError(exc.line, exc.column, "", exc.problem)], source) from None
    if node is None:
        raise PolicyLoadError([PolicyError(1, 1, "", "the document is empty")], source)
    marks: dict[str, tuple[int, int]] = {}
    errors: list[PolicyError] = []
    data = _plain(node, "", marks, errors)
    if errors:
        raise PolicyLoadError(errors, source)
    try:
        return parse_policy(data)
    except PolicyInvalid as exc:
        found = []
        for issue in exc.issues:
            line, col = _locate(issue.path, marks)
            found.append(PolicyError(line, col, issue.path, issue.message))
        raise PolicyLoadError(found, source) from None


def load_policy_file(path: str | Path) -> Policy:
    """Read and load one policy file (UTF-8)."""
    p = Path(path)
    return load_policy(p.read_text(encoding="utf-8"), str(p))


def validate_policy(text: str) -> list[PolicyError]:
    """Every problem in a policy text; empty when it is valid."""
    try:
        load_policy(text)
    except PolicyLoadError as exc:
        return list(exc.errors)
    return []


def _plain(node: yaml.Node, path: str, marks: dict[str, tuple[int, int]], errors: list[PolicyError]) -> Any:
    """Convert a composed node to plain data, recording where each path starts."""
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            key = _scalar(key_node, path, errors) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                errors.append(PolicyError(line, col, path, f"keys must be strings, not {key!r}"))
                continue
            child = f"{path}.{key}" if path else key
            if key in out:
                errors.append(PolicyError(line, col, child, "is given twice"))
                continue
            out[key] = _plain(value_node, child, marks, errors)
            marks[f"{child}#key"] = (line, col)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, f"{path}[{i}]", marks, errors) for i, item in enumerate(node.value)]
    return _scalar(node, path, errors)


def _scalar(node: yaml.Node, path: str, errors: list[PolicyError]) -> Any:
    """A scalar's value; a tagged value that is not what its tag says (``!!int abc``, ``2024-13-45``) is an error."""
    try:
        # A fresh constructor each time: one kept at module level remembered every node it built (construct_object
        # caches by node and only construct_document clears it), about 100 KB per policy load, never freed.
        return yaml.constructor.SafeConstructor().construct_object(node)
    except (yaml.YAMLError, ValueError, AttributeError, KeyError) as exc:  # PyYAML's constructors raise all four
        problem = str(exc).split("\n", 1)[0] if isinstance(exc, yaml.YAMLError | ValueError) else ""
        tag = node.tag.rsplit(":", 1)[-1]
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        errors.append(PolicyError(line, col, path, f"is not a valid {tag}" + (f" ({problem})" if problem else "")))
        return None


def _locate(path: str, marks: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """Line of a field; for a missing or unknown one, its key or the nearest enclosing node."""
    if f"{path}#key" in marks:
        return marks[f"{path}#key"]
    while path:
        if path in marks:
            return marks[path]
        # Drop the last segment (".name", "[3]", or the first "name" itself) and try the enclosing node.
        path = re.sub(r"(\.[^.\[\]]+|\[\d+\]|^[^.\[\]]+)$", "", path)
    return marks.get("", (0, 0))
