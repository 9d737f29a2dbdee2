"""Reading untrusted JSON: typed accessors that say what was wrong instead of raising ``KeyError``/``TypeError``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["ShapeError", "count", "dig", "ident", "loads", "mapping", "opt_str"]


class ShapeError(ValueError):
    """The JSON parsed but is not the shape this source promises (a missing or mistyped field)."""


def loads(text: str | bytes) -> Any:
    """``json.loads``; raises ``ValueError`` (``json.JSONDecodeError``) with line and column for bad JSON."""
    return json.loads(text)


def mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{what} is {type(value).__name__}, expected an object")
    return value


def dig(obj: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path (``user.screen_name``), None when any step is missing."""
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def ident(value: object, what: str) -> str:
    """A required id: a non-empty string or an integer (ids come as both), as a string."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ShapeError(f"{what} is missing or not a string or integer")
    return str(value)


def opt_str(value: object, what: str) -> str:
    """An optional string field: "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ShapeError(f"{what} is {type(value).__name__}, expected a string")
    return value


def count(value: object, what: str) -> int:
    """An optional non-negative count: 0 when absent; numeric strings are accepted (some APIs quote them)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShapeError(f"{what} is {value!r}, expected a non-negative integer")
    return value
