"""Turn fetched bytes into text: byte-order mark, HTTP header, configured default, in-document declaration, then
UTF-8 and GB18030.

Chinese sites still serve GBK/GB2312 pages, often without saying so in the header. GB18030 is a superset of both, so
every GB label decodes with it: a page labelled "gb2312" that uses a GBK-only character still decodes right.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["declared_charset", "decode_body", "header_charset", "normalise_label"]

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# GB labels all map to the superset; "cp936" is what Windows calls GBK.
_ALIASES = {
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "utf8": "utf-8",
}
# Python codecs no web document is written in, which a hostile label must not select: escape codecs turn "\u..." in
# the text into other characters (and warn on bad escapes), "undefined" refuses everything, UTF-7 smuggles markup.
_NOT_DOCUMENT_CODECS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "utf-7"})
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9._:-]+)", re.IGNORECASE)
# Browsers look for the <meta> within the first 1024 bytes; real pages put comments and scripts first, so look further.
_SNIFF_BYTES = 4096


def normalise_label(label: str) -> str | None:
    """The Python codec name for a charset label, or None when Python does not know it."""
    name = _ALIASES.get(label.strip().lower(), label.strip().lower())
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a label with a NUL character or a lone surrogate
        return None
    return None if codec in _NOT_DOCUMENT_CODECS else codec


def header_charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type header value, normalised."""
    match = _HEADER_CHARSET.search(content_type)
    return normalise_label(match.group(1)) if match else None


def declared_charset(body: bytes) -> str | None:
    """The encoding the document declares itself: an XML declaration or an HTML ``<meta charset>``."""
    head = body[:_SNIFF_BYTES]
    match = _XML_DECL.match(head) or _META_CHARSET.search(head)
    if match is None:
        return None
    return normalise_label(match.group(1).decode("ascii", "replace"))


def decode_body(body: bytes, content_type: str = "", default: str = "") -> tuple[str, str]:
    """Decode ``body``; returns the text and the encoding that worked.

    Candidates in order: BOM, the header's charset, ``default`` (a source's configured encoding for servers that do
    not declare one), the document's own declaration, UTF-8, GB18030. Each is tried strictly, so a wrong declaration
    falls through to the next candidate instead of producing mojibake. Raises ``ValueError`` naming the candidates
    tried when none fits.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace"), codec
    candidates: list[str] = []
    for label in (header_charset(content_type), normalise_label(default) if default else None, declared_charset(body)):
        if label and label not in candidates:
            candidates.append(label)
    for fallback in ("utf-8", "gb18030"):
        if fallback not in candidates:
            candidates.append(fallback)
    for codec in candidates:
        try:
            return body.decode(codec), codec
        except (UnicodeError, LookupError):  # UnicodeError: codecs that refuse every input ("undefined")
            continue
    raise ValueError(", ".join(candidates))
