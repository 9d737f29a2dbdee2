"""Read YAML that someone else wrote without letting it cost us more than its size.

Policies, trust files and other configuration arrive as YAML that a person (or an attacker with write access to a
ConfigMap) controls. `yaml.safe_load` refuses to build Python objects, but it still expands aliases: a 500-byte
"billion laughs" document of nested anchors and aliases becomes billions of nodes and freezes the event loop.
Our configuration never needs anchors, so the loader here refuses them outright, at the first anchor or alias
event, before anything is expanded. It also refuses:

- documents over ``max_bytes`` (checked before parsing),
- more than one document in the stream,
- nesting deeper than ``max_depth`` (a 100 KB run of ``[`` would otherwise exhaust the Python stack),
- any tag outside the plain-data set (``!!python/...``, ``!!set``, ``!!omap``, merge keys ``<<``, custom ``!tags``),
- (``load_yaml`` only) mapping keys that are not strings, and a key given twice in one mapping
  (PyYAML silently keeps the last one, which hides mistakes).

Every refusal is a `SafeYamlError` (a ValueError) that names the source and, where known, the line.
`compose_yaml` returns the node tree for callers that map errors back to lines (the grader's policy loader).

The parser is PyYAML's pure-Python one (the C parser cannot be hooked per event), so parsing the full
``max_bytes`` costs on the order of a second; keep limits near what real files need.
"""

from __future__ import annotations

from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "SafeYamlError", "compose_yaml", "load_yaml"]

DEFAULT_MAX_BYTES: Final = 256 * 1024
DEFAULT_MAX_DEPTH: Final = 64

_T = "tag:yaml.org,2002:"
# The plain-data tags; everything SafeLoader resolves implicitly is among them.
_ALLOWED_TAGS: Final = frozenset(
    _T + name for name in ("null", "bool", "int", "float", "str", "seq", "map", "timestamp", "binary")
)
_STR_TAG: Final = _T + "str"


class SafeYamlError(ValueError):
    """A YAML document was refused or could not be parsed; says where (``source``, 1-based ``line``; 0 = unknown)."""

    def __init__(self, problem: str, *, source: str, line: int = 0, column: int = 0) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.column = column
        where = f"{source}: line {line}" if line else source
        super().__init__(f"{where}: {problem}")


class _RefusingLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses anchors, aliases, deep nesting and non-plain tags as they arrive."""

    def __init__(self, stream: str | bytes, *, source: str, max_depth: int) -> None:
        super().__init__(stream)
        self._source = source
        self._max_depth = max_depth
        self._depth = 0

    def _refuse(self, problem: str, mark: Any) -> SafeYamlError:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        return SafeYamlError(problem, source=self._source, line=line, column=column)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        # Refuse before the base class looks the alias up or registers the anchor: nothing is ever expanded.
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse(f"aliases are not allowed (*{event.anchor})", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise self._refuse(f"anchors are not allowed (&{anchor})", event.start_mark)
        if self._depth >= self._max_depth:
            raise self._refuse(f"nested deeper than {self._max_depth} levels", event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None and node.tag not in _ALLOWED_TAGS:
            kind = "python object tags" if node.tag.startswith(_T + "python/") else "the tag"
            raise self._refuse(f"{kind} {node.tag!r} not allowed; only plain data", node.start_mark)
        return node


def _check_size(text: str | bytes, *, source: str, max_bytes: int) -> None:
    # A str has at least one byte per character: refuse huge ones before paying for the encode.
    size = len(text) if isinstance(text, bytes) or len(text) > max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise SafeYamlError(f"larger than {max_bytes} bytes", source=source)


def compose_yaml(
    text: str | bytes,
    *,
    source: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> yaml.Node | None:
    """The single document's node tree (None when the text holds no document), or SafeYamlError."""
    _check_size(text, source=source, max_bytes=max_bytes)
    try:
        # The reader checks the whole text for characters YAML does not allow (NUL, most C0 controls) right here.
        loader = _RefusingLoader(text, source=source, max_depth=max_depth)
    except yaml.YAMLError as exc:
        raise SafeYamlError(f"not valid YAML: {exc}", source=source) from None
    try:
        node: yaml.Node | None = loader.get_single_node()
    except SafeYamlError:
        raise
    except yaml.composer.ComposerError as exc:
        if "another document" in str(exc.problem):
            raise loader._refuse("more than one document", exc.problem_mark) from None
        raise loader._refuse(f"not valid YAML: {exc.problem}", exc.problem_mark) from None
    except yaml.MarkedYAMLError as exc:
        raise loader._refuse(f"not valid YAML: {exc.problem or exc}", exc.problem_mark or exc.context_mark) from None
    except yaml.YAMLError as exc:
        raise SafeYamlError(f"not valid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
    return node


def load_yaml(
    text: str | bytes,
    *,
    source: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Any:
    """Plain data (dict with str keys, list, str, int, float, bool, None, date/datetime, bytes) or SafeYamlError.

    An empty document gives None, like `yaml.safe_load`.
    """
    node = compose_yaml(text, source=source, max_bytes=max_bytes, max_depth=max_depth)
    if node is None:
        return None
    return _construct(node, SafeConstructor(), source)


def _construct(node: yaml.Node, constructor: SafeConstructor, source: str) -> Any:
    """Build plain data from a checked node tree; depth is already bounded by the composer."""
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                raise SafeYamlError("mapping keys must be strings", source=source, line=line)
            key = str(key_node.value)
            if key in out:
                raise SafeYamlError(f"key {key!r} is given twice", source=source, line=line)
            out[key] = _construct(value_node, constructor, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, constructor, source) for item in node.value]
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, AttributeError, KeyError) as exc:
        # ValueError: e.g. an integer beyond Python's int-from-string digit limit, or a bad date; AttributeError and
        # KeyError: what PyYAML's constructors raise for "!!timestamp x" and "!!bool x".
        problem = str(exc) if not isinstance(exc, AttributeError | KeyError) else f"not a {node.tag.rsplit(':', 1)[-1]}"
        raise SafeYamlError(f"bad value: {problem}", source=source, line=node.start_mark.line + 1) from None
