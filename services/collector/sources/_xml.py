"""XML parsing that is safe on untrusted feeds: no entity declarations at all, no external references.

A feed has no business declaring entities, and refusing them (expat handlers that raise) closes both the "billion
laughs" expansion and external entity (XXE) reads without a new dependency (this is what defusedxml does with
``forbid_entities``). HTML entity names that sloppy feeds use (``&nbsp;``, ``&middot;``) are rewritten to character
references first, so they parse instead of failing the whole feed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.entities import name2codepoint
from xml.parsers import expat

__all__ = ["MalformedXml", "parse_xml"]

_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_NAMED_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]{1,31});")
# Characters XML 1.0 does not allow anywhere: one stray control character in one item's title made the whole feed
# "not well-formed", so every item of it was lost. Control characters are dropped, lone surrogates become U+FFFD.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedXml(ValueError):
    """Not well-formed XML, or a document that declares entities or references external ones."""


def _forbid_entity_decl(name: str, *_args: object) -> None:
    raise MalformedXml(f"entity declaration {name!r} is not allowed")


def _forbid_external(context: str, base: str | None, system_id: str | None, public_id: str | None) -> int:
    raise MalformedXml(f"external entity reference {system_id or public_id!r} is not allowed")


def _html_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _XML_ENTITIES or name not in name2codepoint:
        return match.group(0)
    return f"&#{name2codepoint[name]};"


def _clark(name: str) -> str:
    """expat's "uri}local" to ElementTree's "{uri}local"."""
    return "{" + name if "}" in name else name


def parse_xml(text: str) -> ET.Element:
    """Parse a document from text (already decoded: its encoding declaration is ignored) into ElementTree elements.

    Raises ``MalformedXml`` with expat's message and position.
    """
    builder = ET.TreeBuilder()
    # The text is already decoded; telling expat "utf-8" makes it ignore the document's own declaration ("gbk").
    parser = expat.ParserCreate(encoding="utf-8", namespace_separator="}")
    parser.buffer_text = True
    parser.StartElementHandler = lambda tag, attrs: builder.start(
        _clark(tag), {_clark(key): value for key, value in attrs.items()}
    )
    parser.EndElementHandler = lambda tag: builder.end(_clark(tag))
    parser.CharacterDataHandler = builder.data
    parser.EntityDeclHandler = _forbid_entity_decl
    parser.UnparsedEntityDeclHandler = _forbid_entity_decl
    parser.ExternalEntityRefHandler = _forbid_external
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
    try:
        parser.Parse(_NAMED_ENTITY.sub(_html_entity, text), True)
        return builder.close()
    except expat.ExpatError as err:
        raise MalformedXml(str(err)) from err
    except AssertionError as err:  # TreeBuilder.close() on a document without a root element
        raise MalformedXml("no root element") from err
