"""Markup to plain text, keeping the line structure a reader would see (paragraphs, line breaks, list items).

Deeply nested markup is hostile input: the HTML parser's cost grows with the square of the nesting (40,000 nested
``<div>`` take lexbor about 4 s, blocking the event loop, closed or not). ``parse_html`` estimates that cost with one
linear scan of the tags first and refuses with ``TooDeep``; ``html_to_text`` then falls back to stripping the tags, so
the text of such an item is still read.
"""

from __future__ import annotations

import html
import re
from typing import Final

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["MAX_NESTING_COST", "TooDeep", "clean_text", "html_to_text", "nesting_cost", "node_text", "parse_html"]

# Sum, over closing tags, of the nesting depth they close at: ~1e7 is ~0.03 s of parsing here, 8e8 is ~4 s.
MAX_NESTING_COST: Final = 20_000_000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^<>]*?(/?)>")
# A tag as the HTML tokenizer starts one: "<" and a letter, the name running to a space, "/" or ">" (so "<a<a<a" is
# one tag), whether or not a ">" ever ends it (``<div a="<">`` is a div); "/>" is noted where it is plain.
_TAG_START = re.compile(r"<(/?)([A-Za-z][^\s/>]*)(?:[^<>]*?(/)>)?")
# Elements that never hold others, or that the parser closes implicitly (they do not deepen the tree).
_FLAT = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
        "wbr", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "tbody", "thead", "tfoot", "rb",
        "rt", "rp", "colgroup",
    }
)  # fmt: skip


class TooDeep(ValueError):
    """Markup nested so deeply that parsing it would take too long; not parsed."""


def nesting_cost(markup: str, *, stop_above: int | None = None) -> int:
    """An estimate of the parser's work on nesting: each tag costs the depth of the open elements it meets.

    With ``stop_above`` the scan ends as soon as the cost passes it (what ``parse_html`` needs to know).

    Conservative where it cannot be exact: an end tag closes only an element of its name that is open (a stray
    ``</span>`` closes nothing), and "/>" closes an element only inside ``<svg>`` or ``<math>`` (HTML ignores it on
    ``<div/>``); tags inside comments and scripts are counted as if they were markup.
    """
    stack: list[str] = []
    open_by_name: dict[str, int] = {}
    cost = 0
    for match in _TAG_START.finditer(markup):
        closing, raw_name, self_closing = match.groups()
        name = raw_name.lower()
        if name in _FLAT:
            continue
        if closing:
            if open_by_name.get(name):
                cost += len(stack)
                while stack:  # the element and whatever was left open inside it
                    top = stack.pop()
                    open_by_name[top] -= 1
                    if top == name:
                        break
            continue
        cost += len(stack)
        if stop_above is not None and cost > stop_above:
            break
        if self_closing and (open_by_name.get("svg") or open_by_name.get("math")):
            continue
        stack.append(name)
        open_by_name[name] = open_by_name.get(name, 0) + 1
    return cost


def parse_html(markup: str) -> LexborHTMLParser:
    """The parsed document; ``TooDeep`` (a ValueError) when its nesting would make parsing slow."""
    cost = nesting_cost(markup, stop_above=MAX_NESTING_COST)
    if cost > MAX_NESTING_COST:
        raise TooDeep(f"markup nested too deeply to parse (nesting cost over {MAX_NESTING_COST})")
    return LexborHTMLParser(markup)


# Elements whose content is not text a reader sees.
_SKIP = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg", "head", "-comment"})
# Elements that start a new line.
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
        "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_LINE_BREAKS = re.compile(r"\n{2,}")


def clean_text(text: str) -> str:
    """Collapse runs of spaces (including full-width ones); strip each line; drop blank lines."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _LINE_BREAKS.sub("\n", "\n".join(lines)).strip()


def node_text(node: LexborNode) -> str:
    """The visible text under ``node`` with block boundaries as line breaks."""
    out: list[str] = []
    # An explicit stack instead of recursion: broken pages can nest thousands of unclosed tags.
    stack: list[LexborNode | str] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        tag = item.tag or ""
        if tag == "-text":
            out.append(item.text_content or "")
            continue
        if tag in _SKIP:
            continue
        block = tag in _BLOCK
        if block:
            out.append("\n")
            stack.append("\n")
        stack.extend(reversed(list(item.iter(include_text=True))))
    return clean_text("".join(out))


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment or page; text without markup is only whitespace-cleaned."""
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    try:
        tree = parse_html(markup)
    except TooDeep:
        # Still the item's text, only without the line structure: tags dropped, entities decoded.
        return clean_text(html.unescape(_TAG.sub(" ", markup)))
    root = tree.body or tree.root
    return node_text(root) if root is not None else ""
