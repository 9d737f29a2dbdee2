"""``WordSplitter.field`` lower-cases the joined tokens at once when the text has no whitespace; that must be the
string the per-token form makes (tokens without whitespace ones, each lower-cased, joined by one space)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from qingfeng.elastic import default_splitter

_DATA = Path(os.environ.get("QF_SHARED_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))


def _per_token(text: str) -> str:
    splitter = default_splitter()
    return " ".join(token.lower() for token in splitter._segmenter.cut(text) if not token.isspace())


@pytest.mark.parametrize(
    "text",
    [
        "网友举报局长涉嫌受贿，收受好处费",
        "ΟΔΟΣΣΑΣ局长ΣΑΣ",  # final sigma: lower-casing looks at the neighbours of Σ
        "Σ局长Σ受贿ΑΣ",
        "İstanbul局长KELVIN\u212a",  # lower() that changes length or maps Kelvin
        "A'Σ'B局长",  # case-ignorable apostrophes around a sigma
        "with spaces ΑΣ Β",  # whitespace: the per-token path
        "",
    ],
)
def test_field_is_the_per_token_form(text: str) -> None:
    assert default_splitter().field(text) == _per_token(text)


def test_field_is_the_per_token_form_on_the_shared_posts() -> None:
    file = _DATA / "weibo_posts.jsonl"
    if not file.is_file():
        pytest.skip(f"no shared data at {file}")
    splitter = default_splitter()
    with file.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle if line.strip()]
    assert len(texts) > 50_000
    differ = [t for t in texts if splitter.field(t) != _per_token(t)]
    assert differ == []
