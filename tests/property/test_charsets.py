"""Charset decoding: any bytes under any Content-Type and configured default decode to text with the codec that
worked, or raise ``ValueError`` naming the candidates tried (``Undecodable`` to the fetcher's callers)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from services.collector.fetch.charset import declared_charset, decode_body, header_charset, normalise_label
from tests.property._support import fewer, run
from tests.property.strategies import any_text

# Labels a server or a source's configuration might name, real and not, including Python codecs that are not text
# encodings (rot13, base64, zlib) or refuse every input (undefined).
LABELS = (
    "utf-8", "utf8", "UTF-8", "gbk", "gb2312", "GB18030", "x-gbk", "cp936", "big5", "shift_jis", "euc-jp",
    "iso-2022-jp", "hz", "utf-16", "utf-16-be", "utf-32", "utf-7", "latin-1", "ascii", "koi8-r", "idna",
    "punycode", "unicode_escape", "raw_unicode_escape", "undefined", "rot13", "base64", "hex", "zlib", "bz2",
    "uu", "quopri", "mbcs", "charmap", "palmos", "", " ", "nonsense", "utf-8\x00", "\ud800",
)  # fmt: skip
_labels = st.one_of(st.sampled_from(LABELS), any_text)
_content_types = st.one_of(
    _labels.map(lambda label: f"text/html; charset={label}"),
    _labels.map(lambda label: f'application/xml; charset="{label}"'),
    any_text,
)
_declarations = st.one_of(
    _labels.map(lambda label: f'<?xml version="1.0" encoding="{label}"?><rss/>'.encode("utf-8", "surrogatepass")),
    _labels.map(lambda label: f'<meta charset="{label}"><p>正文</p>'.encode("utf-8", "surrogatepass")),
)
_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(bytes.__add__, _declarations, st.binary(max_size=50)),
    st.builds(
        lambda text, codec: text.encode(codec, "replace"), any_text, st.sampled_from(["gb18030", "utf-16", "big5"])
    ),
    st.sampled_from([b"\xef\xbb\xbf\xff", b"\xff\xfe\x00", b"\xfe\xff\xd8\x00", "正文".encode("gbk")]),
)


@given(_bodies, _content_types, _labels)
@example(b"\xff", "text/html; charset=undefined", "")
@example(b"\xff", "", "idna")
@example(b"abc", "text/plain; charset=rot13", "")
@example(b"\xe4\xb8", "text/html; charset=punycode", "unicode_escape")
@example("正文".encode("gbk"), "text/html; charset=utf-8", "")
def test_any_body_decodes_or_names_the_candidates(body: bytes, content_type: str, default: str) -> None:
    decoded, error = run("charset.decode_body", decode_body, body, content_type, default, errors=(ValueError,))
    if error is not None:
        assert not isinstance(error, UnicodeError), repr(error)  # its own ValueError, after trying every candidate
        assert "utf-8" in str(error) and "gb18030" in str(error), str(error)
        return
    assert decoded is not None
    text, codec = decoded
    assert isinstance(text, str) and isinstance(codec, str) and codec


@fewer(2_000)
@given(_labels, _content_types, _bodies)
def test_labels_and_declarations_give_a_codec_name_or_none(label: str, content_type: str, body: bytes) -> None:
    for name, read, value in (
        ("charset.normalise_label", normalise_label, label),
        ("charset.header_charset", header_charset, content_type),
        ("charset.declared_charset", declared_charset, body),
    ):
        codec, _ = run(name, read, value)
        assert codec is None or isinstance(codec, str)
