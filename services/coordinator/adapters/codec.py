"""Core dataclasses ⇄ JSON documents for the SQL rows, driven by the dataclasses' own type hints.

Datetimes are ISO strings in UTC, enums their values, tuples lists; decoding rebuilds the exact types, so
``decode(Case, encode(case)) == case``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar, cast

__all__ = ["decode", "encode"]

T = TypeVar("T")


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _decode(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], value)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        return dict(value)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return decode(hint, value)
        if issubclass(hint, Enum):
            return hint(value)
        if hint is datetime:
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if hint is float:
            return float(value)
    return value


def decode(cls: type[T], doc: dict[str, Any]) -> T:
    hints = _hints(cast(Any, cls))
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: _decode(hints[k], v) for k, v in doc.items() if k in names})
