"""Markup to plain text, keeping the line structure a reader would see (paragraphs, line breaks, list items)."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["clean_text", "html_to_text", "node_text"]

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
    tree = LexborHTMLParser(markup)
    root = tree.body or tree.root
    return node_text(root) if root is not None else ""
