"""Evaluate the corruption relevance score (涉腐相关度) on hand-labelled posts, beside trivial baselines.

    .venv/bin/python bench/relevance_eval.py [--labels tests/data/relevance/labels.jsonl]
        [--written tests/data/relevance/written.jsonl] [--data ../shared/data] [--json OUT] [--errors SPLIT]

The labels (id, label 1/0, kind, note, split "calibrate"|"report") were written by reading the posts; the texts are
never stored in the repository: they are joined by id from `weibo_posts.jsonl` under `--data`, except the posts the
labeller wrote themselves (`--written`, with a `text` field). Each text is scored by the collector's enrichment
(`Enricher.enrich`, i.e. `prepare` then `enrich_prepared`, what `services.collector.core.enrich_post` does for a
post without a title) with the built-in lexicons and relevance policy, calibration included.

For each split (report first: the figures to quote; calibrate: where the calibration map and the best threshold were
fitted, in-sample) it prints precision, recall and F1 of "score >= t" at the policy thresholds 0.8 (the grader's blue
criterion) and 0.5 (the coordinator's 涉腐 routing), at the threshold of best F1 on the calibrate split, and beside
them three baselines: the one-line keyword rule below, "all relevant" and "none relevant". Then a reliability table
(score bucket -> posts, mean score, observed share relevant) to judge the calibration, and recall per label kind.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qingfeng.text import Enricher, Relevance

REPO = Path(__file__).resolve().parents[1]

__all__ = [
    "KEYWORD_RULE",
    "Item",
    "Metrics",
    "best_threshold",
    "evaluate",
    "labels_sha256",
    "load_items",
    "metrics",
    "reliability",
    "score_items",
]

DEFAULT_LABELS = REPO / "tests" / "data" / "relevance" / "labels.jsonl"
DEFAULT_WRITTEN = REPO / "tests" / "data" / "relevance" / "written.jsonl"
DEFAULT_DATA = REPO / ".." / "shared" / "data"
POLICY_THRESHOLDS = (0.8, 0.5)  # grader four_level/three_level blue criterion; coordinator routing.yaml corruption
SPLITS = ("report", "calibrate")
# The one-line rule a new user would write first.
KEYWORD_RULE = re.compile("腐败|贪污|受贿|纪委|落马|反腐|行贿|官员")


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled post with its text."""

    id: str
    label: int
    split: str
    kind: str
    text: str
    source: str = "weibo"
    """"weibo" (a post of the shared data) or "written" (a sentence the labeller wrote)."""


@dataclass(frozen=True, slots=True)
class Metrics:
    precision: float
    recall: float
    f1: float
    flagged: int


def labels_sha256(labels: Path, written: Path | None) -> str:
    """SHA-256 of the label file followed by the written posts' file (when present): what a fit was made on."""
    digest = hashlib.sha256(labels.read_bytes())
    if written is not None and written.is_file():
        digest.update(written.read_bytes())
    return digest.hexdigest()


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_items(labels: Path, written: Path | None, data: Path) -> tuple[list[Item], list[str]]:
    """The labelled posts with their texts, and the problems met (rows skipped and why)."""
    rows = _jsonl(labels)
    texts: dict[str, str] = {}
    if written is not None and written.is_file():
        # The labeller's own sentences carry their label, kind and split beside the text.
        extra = _jsonl(written)
        rows += extra
        texts.update({str(r["id"]): str(r["text"]) for r in extra})
    wanted = {str(r.get("id")) for r in rows} - texts.keys()
    with (data / "weibo_posts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            post = json.loads(line)
            if post["id"] in wanted:
                texts[post["id"]] = post["text"] or ""
    items, problems, seen = [], [], set()
    for row in rows:
        pid, label, split = str(row.get("id")), row.get("label"), row.get("split")
        if label not in (0, 1) or split not in SPLITS:
            problems.append(f"{pid}: label {label!r} / split {split!r} not usable")
        elif pid not in texts:
            problems.append(f"{pid}: no text (not in {data} nor in the written posts)")
        elif pid in seen:
            problems.append(f"{pid}: labelled twice, first kept")
        else:
            seen.add(pid)
            source = "written" if "text" in row else "weibo"
            items.append(Item(pid, int(label), str(split), str(row.get("kind") or "-"), texts[pid], source))
    return items, problems


def score_items(items: Iterable[Item], enricher: Enricher) -> list[Relevance]:
    return [enricher.enrich(item.text).relevance for item in items]


def metrics(predicted: Sequence[bool], labels: Sequence[int]) -> Metrics:
    tp = sum(1 for p, y in zip(predicted, labels, strict=True) if p and y)
    flagged, relevant = sum(predicted), sum(labels)
    precision = tp / flagged if flagged else 0.0
    recall = tp / relevant if relevant else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(precision, recall, f1, flagged)


def best_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The threshold t of best F1 for "score >= t" (ties: the highest t, the most precise)."""
    best, best_f1 = 1.0, -1.0
    for t in sorted(set(scores) | {1.0}, reverse=True):
        if t <= 0:
            continue  # "everything" is the all-relevant baseline, not a threshold
        f1 = metrics([s >= t for s in scores], labels).f1
        if f1 > best_f1:
            best, best_f1 = t, f1
    return best


def reliability(
    scores: Sequence[float], labels: Sequence[int], edges: Sequence[float]
) -> list[tuple[str, int, float, float]]:
    """(bucket, posts, mean score, share relevant) per score bucket [edge_i, edge_i+1)."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        last = hi >= edges[-1]
        pairs = [(s, y) for s, y in zip(scores, labels, strict=True) if lo <= s < hi or (last and s == hi)]
        if pairs:
            mean = sum(s for s, _ in pairs) / len(pairs)
            name = "0 (no evidence)" if hi <= 0.0001 else f"[{lo:.2f}, {hi:.2f}{']' if last else ')'}"
            out.append((name, len(pairs), mean, sum(y for _, y in pairs) / len(pairs)))
    return out


def evaluate(items: Sequence[Item], enricher: Enricher, best: float | None = None) -> dict[str, Any]:
    """Every figure the report prints, per split, as plain data. ``best``: the threshold to use instead of the
    one of best F1 on these items' calibrate split."""
    relevances = score_items(items, enricher)
    by_split: dict[str, tuple[list[Item], list[float]]] = {s: ([], []) for s in SPLITS}
    for item, rel in zip(items, relevances, strict=True):
        by_split[item.split][0].append(item)
        by_split[item.split][1].append(rel.score)
    cal_items, cal_scores = by_split["calibrate"]
    if best is None:
        best = best_threshold(cal_scores, [i.label for i in cal_items]) if cal_items else 0.5
    result: dict[str, Any] = {"best_threshold_from_calibrate": best}
    for split, (its, scores) in by_split.items():
        labels = [i.label for i in its]
        rules: list[tuple[str, Callable[[Item, float], bool]]] = [
            *((f"score >= {t:g} (policy)", lambda _i, s, t=t: s >= t) for t in POLICY_THRESHOLDS),
            (f"score >= {best:.4g} (best F1 on calibrate)", lambda _i, s: s >= best),
            ("keyword rule", lambda i, _s: bool(KEYWORD_RULE.search(i.text))),
            ("all relevant", lambda _i, _s: True),
            ("none relevant", lambda _i, _s: False),
        ]
        rows = {name: metrics([rule(i, s) for i, s in zip(its, scores, strict=True)], labels) for name, rule in rules}
        kinds: dict[str, list[tuple[int, float]]] = {}
        for i, s in zip(its, scores, strict=True):
            kinds.setdefault(f"{i.kind} ({'relevant' if i.label else 'not relevant'})", []).append((i.label, s))
        result[split] = {
            "posts": len(its),
            "relevant": sum(labels),
            "rows": {name: vars_of(m) for name, m in rows.items()},
            "reliability": reliability(scores, labels, (0.0, 0.0001, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)),
            "kinds": {
                k: {"posts": len(v), "correct_at_0.8": sum(1 for y, s in v if (s >= 0.8) == bool(y))}
                for k, v in sorted(kinds.items())
            },
        }
    return result


def vars_of(m: Metrics) -> dict[str, float]:
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1, "flagged": m.flagged}


def _print(result: dict[str, Any]) -> None:
    for split in SPLITS:
        r = result[split]
        title = "REPORT split (held out from every fit)" if split == "report" else "calibrate split (in-sample)"
        print(f"\n== {title}: {r['posts']} posts, {r['relevant']} relevant ==")
        print(f"{'rule':<40} {'P':>6} {'R':>6} {'F1':>6} {'flagged':>8}")
        for name, m in r["rows"].items():
            print(f"{name:<40} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} {m['flagged']:8d}")
        print(f"reliability ({split}): score bucket, posts, mean score, observed share relevant")
        for bucket, n, mean, share in r["reliability"]:
            print(f"  {bucket:<16} {n:5d} {mean:8.3f} {share:8.3f}")
        print(f"per label kind ({split}): posts, right at 0.8")
        for kind, k in r["kinds"].items():
            print(f"  {kind:<40} {k['posts']:5d} {k['correct_at_0.8']:5d}")


def _markdown(result: dict[str, Any]) -> str:
    """The report split's table as the README shows it: all labelled posts, and the Weibo posts alone."""
    lines = [
        "| rule (report split) | P | R | F1 | Weibo posts only: P | R | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    weibo = result.get("weibo_only", {}).get("report", {}).get("rows", {})
    for name, m in result["report"]["rows"].items():
        w = weibo.get(name)
        tail = f"{w['precision']:.3f} | {w['recall']:.3f} | {w['f1']:.3f}" if w else "- | - | -"
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {tail} |")
    return "\n".join(lines)


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """The labelled set's files and the shared data directory (this script, the calibration and the fit)."""
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS)
    parser.add_argument("--written", type=Path, default=DEFAULT_WRITTEN)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory holding weibo_posts.jsonl")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_label_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--errors", choices=SPLITS, help="list the posts of this split misjudged at 0.8")
    parser.add_argument("--markdown", action="store_true", help="also print the report split as a Markdown table")
    args = parser.parse_args(argv)
    items, problems = load_items(args.labels, args.written, args.data)
    enricher = Enricher()
    digest = labels_sha256(args.labels, args.written)
    print(f"labels {args.labels} (sha256 {digest[:12]}): {len(items)} usable, {len(problems)} skipped")
    for problem in problems[:10]:
        print(f"  skipped {problem}")
    print(
        f"relevance policy {enricher.lexicons.relevance.version}; calibration: "
        f"{getattr(enricher.lexicons.relevance, 'calibration_source', '') or 'none (raw noisy-or)'}"
    )
    model = getattr(enricher, "_scorer", None)
    learned = getattr(model, "model", None)  # absent in older versions
    print(f"learned layer: {learned.source if learned is not None else 'none (rule criteria only)'}")
    source = getattr(enricher.lexicons.relevance, "calibration_source", "")  # absent in older versions
    if source and f"sha256 {digest[:12]}" not in source:
        print("WARNING: the calibration was fitted on other labels than these; run bench/relevance_calibrate.py")
    result = evaluate(items, enricher)
    print(f"best-F1 threshold chosen on the calibrate split: {result['best_threshold_from_calibrate']:.4g}")
    _print(result)
    for source in ("weibo", "written"):
        part = [i for i in items if i.source == source]
        if not part:
            continue
        sub = evaluate(part, enricher, result["best_threshold_from_calibrate"])
        print(f"\n-- {source} posts only (same thresholds) --")
        for split in SPLITS:
            print(f"{split}: {sub[split]['posts']} posts, {sub[split]['relevant']} relevant")
            for name, m in sub[split]["rows"].items():
                if name in ("all relevant", "none relevant"):
                    continue
                print(f"  {name:<38} P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f}")
        result[f"{source}_only"] = sub
    if args.errors:
        print(f"\nmisjudged at 0.8 ({args.errors} split):")
        for item in items:
            if item.split != args.errors:
                continue
            rel = enricher.enrich(item.text).relevance
            if (rel.score >= 0.8) != bool(item.label):
                why = "; ".join(f"{r.criterion}={r.weight}:{'、'.join(r.evidence)}" for r in rel.reasons)
                print(
                    f"  {item.id} label={item.label} {item.kind} score={rel.score} raw={rel.raw} [{why}] "
                    f"{item.text[:80]!r}"
                )
    if args.markdown:
        print(_markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
