"""Give every label without a split one, deterministically, and never move a split already stored.

Run from the repository root:  python tests/data/relevance/assign_splits.py [--data ../shared/data]

Why groups and not posts: two posts of one cascade, or two cascades that carry the same copied text, would leak
from the calibration half into the report half. So events are joined into groups (an event is a Weibo cascade;
a written sentence is its own event) when their labelled posts' own words are near-duplicates, and a whole group
goes to one half. New groups are taken in order of a salted SHA-256 of their smallest event id and each goes to
the half where it keeps the positive and negative counts closest; a tie falls to the hash's low bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SALT = "qingfeng-relevance-split-v1:"
SPLITS = ("calibrate", "report")
# Reposts quote with //@name:, mention with @name, link with t.cn and wrap emoticons in [..]: none is own words.
_NOISE = re.compile(r"//@.*|@[^\s:：,，@]{1,30}|https?://\S+|\[[^\]]{1,8}\]|转发微博|\s+")
NEAR_DUPLICATE = 0.5  # Jaccard of character 3-grams; copied rumour texts score 0.7-1.0, unrelated posts < 0.1
MIN_CHARS = 15  # shorter texts ("反腐先锋") are shared by chance, not by copying


def own_words(text: str) -> str:
    return _NOISE.sub("", text)


def _grams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


def _h(key: str) -> int:
    return int.from_bytes(hashlib.sha256((SALT + key).encode()).digest()[:8], "big")


def read_jsonl(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def groups(event_of: dict[str, str], text_of: dict[str, str]) -> dict[str, str]:
    """Map each event to a group root: events whose labelled texts are near-duplicates share a root."""
    parent = {e: e for e in set(event_of.values())}

    def find(e: str) -> str:
        while parent[e] != e:
            parent[e] = parent[parent[e]]
            e = parent[e]
        return e

    items = [(event_of[i], _grams(t)) for i, t in text_of.items() if len(t) >= MIN_CHARS]
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            (ea, ga), (eb, gb) = items[a], items[b]
            if ea != eb and len(ga & gb) / len(ga | gb) >= NEAR_DUPLICATE:
                ra, rb = find(ea), find(eb)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return {e: find(e) for e in parent}


def assign(rows: list[dict[str, object]], event_of: dict[str, str], text_of: dict[str, str]) -> None:
    """Fill ``split`` in ``rows`` (labels of one file), balancing that file's halves on its own."""
    root = groups(event_of, text_of)
    stored: dict[str, set[str]] = {}
    for row in rows:
        if row.get("split"):
            stored.setdefault(root[event_of[str(row["id"])]], set()).add(str(row["split"]))
    clash = {g: s for g, s in stored.items() if len(s) > 1}
    if clash:
        raise SystemExit(f"near-duplicate groups already stored in both halves: {sorted(clash)}")
    counts = {s: [0, 0] for s in SPLITS}  # [negatives, positives]
    pending: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        g = root[event_of[str(row["id"])]]
        if g in stored:
            row["split"] = next(iter(stored[g]))
            counts[str(row["split"])][int(str(row["label"]))] += 1
        else:
            pending.setdefault(g, []).append(row)
    for g in sorted(pending, key=_h):
        members = pending[g]
        pos = sum(int(str(r["label"])) for r in members)
        neg = len(members) - pos

        def cost(split: str, pos: int = pos, neg: int = neg) -> int:
            other = SPLITS[1 - SPLITS.index(split)]
            return abs(counts[split][1] + pos - counts[other][1]) + abs(counts[split][0] + neg - counts[other][0])

        a, b = cost(SPLITS[0]), cost(SPLITS[1])
        split = SPLITS[0] if a < b else SPLITS[1] if b < a else SPLITS[_h(g) & 1]
        for r in members:
            r["split"] = split
        counts[split][0] += neg
        counts[split][1] += pos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE.parents[2].parent / "shared" / "data")
    args = parser.parse_args()
    posts = {str(r["id"]): {k: str(v) for k, v in r.items()} for r in read_jsonl(args.data / "weibo_posts.jsonl")}
    labels = read_jsonl(HERE / "labels.jsonl")
    written = read_jsonl(HERE / "written.jsonl")
    assign(
        labels,
        {str(r["id"]): posts[str(r["id"])]["event_id"] for r in labels},
        {str(r["id"]): own_words(posts[str(r["id"])]["text"]) for r in labels},
    )
    # A written sentence is its own event.
    assign(
        written,
        {str(r["id"]): str(r["id"]) for r in written},
        {str(r["id"]): own_words(str(r["text"])) for r in written},
    )
    write_jsonl(HERE / "labels.jsonl", labels)
    if written:
        write_jsonl(HERE / "written.jsonl", written)
    for name, rows in (("labels", labels), ("written", written)):
        for split in SPLITS:
            part = [r for r in rows if r["split"] == split]
            pos = sum(int(str(r["label"])) for r in part)
            print(f"{name:8} {split:10} {len(part):4} posts, {pos:4} relevant ({pos / max(len(part), 1):.1%})")


if __name__ == "__main__":
    main()
