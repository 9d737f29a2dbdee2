"""The text kernel's outputs are frozen: speed work on conversion, tagging, keywords and fingerprints keeps them.

For every text: the simplified form, the keywords, every tag (term, category, offset; regions, codes, primary region),
the canonical form for hashing, its content hash and its SimHash. Relevance is not frozen (its policy changes on its
own schedule): the enricher's relevance must equal the scorer's answer for the same tags and text.

Texts: the long-text fixture (always), and from ../shared/data (when present) every post plus the posts of >= 20
characters joined into texts of about 2,000 characters (as ``bench/bench_enrichment.py`` does). Only digests of the
shared data's outputs are stored, never the data.

After a deliberate change of the vocabulary or of an output, rewrite the frozen file and review its diff:

    .venv/bin/python tests/libs/text/test_frozen_outputs.py --write
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from qingfeng.text import Enricher, content_hash, normalize_for_hash, prepare, simhash64

REPO = Path(__file__).resolve().parents[3]
LONG_TEXTS = REPO / "tests" / "fixtures" / "long_texts" / "articles.jsonl"
FROZEN = REPO / "tests" / "fixtures" / "long_texts" / "frozen_outputs.json"
POSTS = Path(os.environ.get("QF_SHARED_DATA", REPO / ".." / "shared" / "data")) / "weibo_posts.jsonl"
CHUNK = 2_000  # shared posts per stored digest: a mismatch names a chunk, and the file stays small

needs_data = pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)")


def _articles() -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in LONG_TEXTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["id"], row["title"], row["text"]) for row in rows]


def _shared_texts() -> list[str]:
    with POSTS.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] or "" for line in fh]


def _joined(texts: Sequence[str], size: int = 2_000) -> list[str]:
    """Distinct posts of >= 20 characters joined in file order into texts of about ``size`` characters."""
    out: list[str] = []
    seen: set[str] = set()
    parts: list[str] = []
    length = 0
    for text in texts:
        if len(text) < 20 or text in seen:
            continue
        seen.add(text)
        parts.append(text)
        length += len(text) + 1
        if length >= size:
            out.append("\n".join(parts))
            parts, length = [], 0
    return out


def outputs(enricher: Enricher, title: str, text: str) -> dict[str, object]:
    """Everything the kernel derives from one post (title and text combined as the collector does), relevance aside."""
    simple_title = prepare(title) if title else ""
    simple_text = prepare(text)
    combined = f"{simple_title}\n{simple_text}" if simple_title else simple_text
    result = enricher.enrich(text) if not title else enricher.enrich_prepared(combined)
    if not title:
        assert result.simplified == simple_text  # enrich() converts exactly as prepare() does
    tags = result.tags
    # relevance is not frozen, but it must be the scorer's answer for exactly these tags and this text
    assert result.relevance == enricher._scorer.score(tags, combined)
    canonical = normalize_for_hash(combined, simplified=True)
    assert canonical == normalize_for_hash(f"{title}\n{text}" if title else text)  # converting inside is the same
    return {
        "simplified": combined if len(combined) <= 200 else hashlib.sha256(combined.encode()).hexdigest(),
        "keywords": list(result.keywords),
        "corruption": [[h.term, h.category, h.start] for h in tags.corruption],
        "officials": [[h.term, h.category, h.start] for h in tags.officials],
        "offline": [[h.term, h.category, h.start] for h in tags.offline],
        "regions": [[h.code, h.name, h.term, h.start] for h in tags.regions],
        "region_codes": list(tags.region_codes),
        "primary_region": tags.primary_region,
        "categories": [list(tags.corruption_categories), list(tags.official_categories), list(tags.offline_categories)],
        "canonical": hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest(),
        "content_hash": content_hash(canonical),
        "simhash": simhash64(canonical, 3),
        "simhash_2": simhash64(canonical, 2),
        # the relevance policy's version changes with the relevance work, which is not frozen here
        "lexicon_version": ";".join(v for v in result.lexicon_version.split(";") if not v.startswith("relevance@")),
    }


def _digest(items: Iterator[dict[str, object]]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(json.dumps(item, ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()


def _shared_digests(enricher: Enricher, texts: Sequence[str]) -> list[str]:
    return [
        _digest(outputs(enricher, "", t) for t in texts[start : start + CHUNK]) for start in range(0, len(texts), CHUNK)
    ]


def _frozen() -> dict[str, object]:
    data: dict[str, object] = json.loads(FROZEN.read_text(encoding="utf-8"))
    return data


def test_long_texts_unchanged(enricher: Enricher) -> None:
    expected = _frozen()["long_texts"]
    assert isinstance(expected, dict)
    articles = _articles()
    assert len(articles) == len(expected) == 40
    for pid, title, text in articles:
        got = json.loads(json.dumps(outputs(enricher, title, text), ensure_ascii=False))
        assert got == expected[pid], pid
        # the body alone too: the title's newline is not what makes the outputs right
        assert _digest(iter([outputs(enricher, "", text)])) == _frozen()["long_bodies"][pid], pid  # type: ignore[index]


def test_frozen_outputs_are_not_trivial() -> None:
    expected = _frozen()["long_texts"]
    assert isinstance(expected, dict)
    assert sum(len(v["corruption"]) for v in expected.values()) > 500  # the fixture is full of vocabulary
    assert sum(len(v["regions"]) for v in expected.values()) > 20
    assert all(len(v["keywords"]) == 8 for v in expected.values())
    assert len({v["simhash"] for v in expected.values()}) == 40


@needs_data
@pytest.mark.data
def test_shared_posts_unchanged(enricher: Enricher) -> None:
    texts = _shared_texts()
    expected = _frozen()["shared_posts"]
    assert isinstance(expected, list)
    got = _shared_digests(enricher, texts)
    assert len(got) == len(expected)
    changed = [i * CHUNK for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert not changed, f"outputs changed in the chunks of {CHUNK} posts starting at {changed}"


@needs_data
@pytest.mark.data
def test_shared_posts_joined_into_long_texts_unchanged(enricher: Enricher) -> None:
    joined = _joined(_shared_texts())
    expected = _frozen()["shared_joined"]
    assert isinstance(expected, list)
    got = [_digest(iter([outputs(enricher, "", t)])) for t in joined]
    assert len(joined) > 100
    changed = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert len(got) == len(expected) and not changed, f"joined texts changed: {changed[:20]}"


def main(argv: Sequence[str]) -> int:
    if argv != ["--write"]:
        print(__doc__)
        return 2
    enricher = Enricher()
    frozen: dict[str, object] = {
        "long_texts": {pid: outputs(enricher, title, text) for pid, title, text in _articles()},
        "long_bodies": {pid: _digest(iter([outputs(enricher, "", text)])) for pid, _, text in _articles()},
    }
    if POSTS.is_file():
        texts = _shared_texts()
        frozen["shared_posts"] = _shared_digests(enricher, texts)
        frozen["shared_joined"] = [_digest(iter([outputs(enricher, "", t)])) for t in _joined(texts)]
    else:
        print(f"shared data not found at {POSTS}: keeping the stored shared digests", file=sys.stderr)
        old = _frozen()
        frozen["shared_posts"], frozen["shared_joined"] = old["shared_posts"], old["shared_joined"]
    # one line per text, so that a diff names the texts that changed
    lines = []
    for key, value in frozen.items():
        if isinstance(value, dict):
            rows = (f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
            lines.append(f" {json.dumps(key)}: {{\n" + ",\n".join(rows) + "\n }")
        else:
            lines.append(f" {json.dumps(key)}: " + json.dumps(value))
    FROZEN.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {FROZEN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
