"""Request validation at the edge, from the rules the protos declare (``qingfeng/v1/field_rules.proto``).

The gateway decodes each request (each item of a client stream too) with its method's input type before anything
leaves it: bytes that are not that message are refused, and so is a message that breaks a field's declared rules —
required, maximum length, maximum number of items, integer range. Every field without rules still gets bounds: an
enum holds a value the contract declares, a string is at most ``DEFAULT_MAX_CHARS`` characters, a repeated field or
map at most ``DEFAULT_MAX_ITEMS`` items, and messages nest at most ``MAX_DEPTH`` deep. The services validate
semantics (a known case id, a legal state change); this layer keeps malformed and oversized input out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from qingfeng.errors import FieldViolation, InvalidArgument
from qingfeng.v1 import field_rules_pb2

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_MAX_ITEMS", "MAX_DEPTH", "items_of", "request_checker", "violations"]

DEFAULT_MAX_CHARS: Final = 65_536
DEFAULT_MAX_ITEMS: Final = 1_000
MAX_DEPTH: Final = 16
_MAX_VIOLATIONS: Final = 20


@dataclass(frozen=True)
class _Rule:
    field: FieldDescriptor
    required: bool
    max_len: int
    max_items: int
    min_value: int | None
    max_value: int | None
    is_map: bool


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


@cache
def _rules(descriptor: Descriptor) -> tuple[_Rule, ...]:
    out = []
    for field in descriptor.fields:
        options = field.GetOptions()
        declared = options.Extensions[field_rules_pb2.rules] if options.HasExtension(field_rules_pb2.rules) else None
        entry = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
        is_map = bool(entry is not None and _repeated(field) and entry.GetOptions().map_entry)
        out.append(
            _Rule(
                field=field,
                required=bool(declared and declared.required),
                max_len=(declared.max_len if declared and declared.max_len else DEFAULT_MAX_CHARS),
                max_items=(declared.max_items if declared and declared.max_items else DEFAULT_MAX_ITEMS),
                min_value=declared.min_value if declared and declared.HasField("min_value") else None,
                max_value=declared.max_value if declared and declared.HasField("max_value") else None,
                is_map=is_map,
            )
        )
    return tuple(out)


def _scalar(rule: _Rule, value: Any, path: str, found: list[FieldViolation]) -> None:
    field = rule.field
    if field.type == FieldDescriptor.TYPE_STRING and len(value) > rule.max_len:
        found.append(FieldViolation(path, f"at most {rule.max_len} characters, got {len(value)}"))
    elif field.type == FieldDescriptor.TYPE_BYTES and len(value) > rule.max_len:
        found.append(FieldViolation(path, f"at most {rule.max_len} bytes, got {len(value)}"))
    elif field.enum_type is not None and field.enum_type.values_by_number.get(value) is None:
        found.append(FieldViolation(path, f"{value} is not a value of {field.enum_type.full_name}"))
    elif isinstance(value, int) and not isinstance(value, bool):
        if rule.min_value is not None and value < rule.min_value:
            found.append(FieldViolation(path, f"at least {rule.min_value}, got {value}"))
        if rule.max_value is not None and value > rule.max_value:
            found.append(FieldViolation(path, f"at most {rule.max_value}, got {value}"))


def _missing(rule: _Rule, message: Message) -> bool:
    field = rule.field
    if _repeated(field):
        return len(getattr(message, field.name)) == 0
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return not message.HasField(field.name)
    return not getattr(message, field.name)


def _walk(message: Message, prefix: str, depth: int, found: list[FieldViolation]) -> None:
    if depth > MAX_DEPTH:
        found.append(FieldViolation(prefix or "<request>", f"nested deeper than {MAX_DEPTH} messages"))
        return
    for rule in _rules(message.DESCRIPTOR):
        if len(found) >= _MAX_VIOLATIONS:
            return
        field = rule.field
        path = f"{prefix}{field.name}"
        if rule.required and _missing(rule, message):
            found.append(FieldViolation(path, "required"))
            continue
        value = getattr(message, field.name)
        if rule.is_map:
            if len(value) > rule.max_items:
                found.append(FieldViolation(path, f"at most {rule.max_items} entries, got {len(value)}"))
                continue
            key_rule, value_rule = _rules(field.message_type)[:2]
            for key, item in value.items():
                _scalar(key_rule, key, f"{path}[{key!r}]", found)
                if value_rule.field.type == FieldDescriptor.TYPE_MESSAGE:
                    _walk(item, f"{path}[{key!r}].", depth + 1, found)
                else:
                    _scalar(value_rule, item, f"{path}[{key!r}]", found)
        elif _repeated(field):
            if len(value) > rule.max_items:
                found.append(FieldViolation(path, f"at most {rule.max_items} items, got {len(value)}"))
                continue
            for index, item in enumerate(value):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    _walk(item, f"{path}[{index}].", depth + 1, found)
                else:
                    _scalar(rule, item, f"{path}[{index}]", found)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if message.HasField(field.name):
                _walk(value, f"{path}.", depth + 1, found)
        else:
            _scalar(rule, value, path, found)


def violations(message: Message) -> list[FieldViolation]:
    """What is wrong with ``message`` by its declared rules and the default bounds (empty when nothing)."""
    found: list[FieldViolation] = []
    _walk(message, "", 0, found)
    return found


@cache
def _batch_members(descriptor: Descriptor) -> tuple[tuple[str, str], ...]:
    """(oneof member, its repeated field) of each batch member: a message whose only field is a repeated one (e.g.
    ``ImportPostsRequest.jsonl_lines`` and ``JsonlLines.lines``)."""
    out = []
    for field in descriptor.fields:
        if field.containing_oneof is None or field.message_type is None or _repeated(field):
            continue
        inner = field.message_type.fields
        if len(inner) == 1 and _repeated(inner[0]) and not _rules(field.message_type)[0].is_map:
            out.append((field.name, inner[0].name))
    return tuple(out)


def items_of(message: Message) -> int:
    """How many items a stream message carries, for per-item limits: one, or the items of a batch it holds.

    Counting a batch's items keeps it from passing as one item; an empty batch still costs one.
    """
    count = 1
    for member, items in _batch_members(message.DESCRIPTOR):
        if message.HasField(member):
            count = max(count, len(getattr(getattr(message, member), items)))
    return count


def request_checker(input_type: Descriptor) -> Callable[[bytes], int]:
    """A check of one serialized request of ``input_type``: raises ``InvalidArgument`` naming the fields; returns the
    number of items the request carries (``items_of``)."""
    message_class = GetMessageClass(input_type)

    def check(request: bytes) -> int:
        try:
            message = message_class.FromString(request)
        except (DecodeError, RecursionError):
            raise InvalidArgument.of("<request>", f"not a {input_type.full_name} message") from None
        found = violations(message)
        if found:
            raise InvalidArgument(found)
        return items_of(message)

    return check
