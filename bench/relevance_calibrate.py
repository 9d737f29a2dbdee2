"""Fit the relevance calibration on the calibrate split of the labelled posts and write it into the policy.

    .venv/bin/python bench/relevance_calibrate.py [--labels tests/data/relevance/labels.jsonl]
        [--written tests/data/relevance/written.jsonl] [--data ../shared/data] [--policy FILE] [--dry-run]

The raw score (the noisy-or of the criteria, `Relevance.raw`) of every calibrate post with some evidence is paired
with its label and fitted by isotonic regression (pool adjacent violators): the monotone step function closest to the
labels in squared error. A block of fewer than `--min-posts` (20) posts is merged into its closest neighbour, so
that each probability is measured on enough posts (±0.1 or so), and each block's value is smoothed to
(relevant + 0.5) / (posts + 1) (Jeffreys), so that no block yields a probability of exactly 0 or 1. The knots
(each block's lowest and highest raw score, flat beyond the ends) are written as the `calibration:` block at the end of
`libs/qingfeng/text/lexicons/relevance.yaml` with the fit's provenance (date, label files and their SHA-256, counts);
the file is then loaded and validated, and restored if it fails. Posts without evidence are not fitted: they score 0
whatever the map says (a score is never given without a reason). The report split is never read here.

With the learned layer (`lexicons/relevance_model.yaml`) in use this script refuses to run: the map must then be
fitted on out-of-fold predictions, which `bench/relevance_fit.py` does (reusing `fit_isotonic` and `write_block`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qingfeng.text import Enricher, load_lexicons
from qingfeng.text.relevance import RelevanceScorer
from relevance_eval import (
    REPO,
    add_label_arguments,
    labels_sha256,
    load_items,
)

__all__ = ["fit_isotonic", "knots_of", "main", "write_block"]

POLICY = REPO / "libs" / "qingfeng" / "text" / "lexicons" / "relevance.yaml"
MARKER = "# calibration: written by bench/relevance_calibrate.py from the calibrate split; do not edit by hand."


def fit_isotonic(pairs: Sequence[tuple[float, int]], min_posts: int = 1) -> list[tuple[float, float, int, int]]:
    """Pool adjacent violators over (raw score, label) pairs: blocks (lowest raw, highest raw, posts, relevant),
    in raw order, whose shares relevant are non-decreasing. Equal raw scores always share a block. A block of
    fewer than ``min_posts`` posts is then merged into the neighbour whose share is closest (still monotone)."""
    counts: dict[float, list[int]] = {}  # raw -> [posts, relevant]: equal scores are one point of the fit
    for raw, label in pairs:
        n_pos = counts.setdefault(raw, [0, 0])
        n_pos[0] += 1
        n_pos[1] += label
    blocks: list[list[float]] = []  # [lo, hi, n, positives]
    for raw, (count, positives) in sorted(counts.items()):
        blocks.append([raw, raw, count, positives])
        while len(blocks) > 1 and blocks[-2][3] / blocks[-2][2] >= blocks[-1][3] / blocks[-1][2]:
            lo, _, n, pos = blocks.pop(-2)
            last = blocks[-1]
            last[0], last[2], last[3] = lo, last[2] + n, last[3] + pos
    while len(blocks) > 1 and min(b[2] for b in blocks) < min_posts:
        i = min(range(len(blocks)), key=lambda k: blocks[k][2])
        share = blocks[i][3] / blocks[i][2]
        neighbours = [k for k in (i - 1, i + 1) if 0 <= k < len(blocks)]
        j = min(neighbours, key=lambda k: abs(blocks[k][3] / blocks[k][2] - share))
        a, b = sorted((i, j))
        blocks[a : b + 1] = [[blocks[a][0], blocks[b][1], blocks[a][2] + blocks[b][2], blocks[a][3] + blocks[b][3]]]
    return [(b[0], b[1], int(b[2]), int(b[3])) for b in blocks]


def knots_of(blocks: Sequence[tuple[float, float, int, int]]) -> list[tuple[float, float]]:
    """(raw, probability) knots from 0 to 1 through each block's ends, values smoothed and kept non-decreasing."""
    knots: list[tuple[float, float]] = []
    level = 0.0
    for lo, hi, n, pos in blocks:
        level = max(level, round((pos + 0.5) / (n + 1), 4))
        for x in (lo, hi):
            x = round(x, 4)
            if knots and x <= knots[-1][0]:
                continue
            knots.append((x, level))
    if not knots or knots[0][0] > 0.0:
        knots.insert(0, (0.0, knots[0][1] if knots else 0.0))
    if knots[-1][0] < 1.0:
        knots.append((1.0, knots[-1][1]))
    return knots


def _load_policy(policy: Path) -> object:
    return load_lexicons() if policy.resolve() == POLICY.resolve() else load_lexicons([policy])


def write_block(
    policy: Path, block: str, *, marker: str = MARKER, validate: Callable[[Path], object] = _load_policy
) -> None:
    """Replace everything from the marker line on (or append) with ``block``; restore the file if it fails to load."""
    before = policy.read_text(encoding="utf-8")
    head = before.split(marker, 1)[0].rstrip("\n")
    policy.write_text(f"{head}\n{marker}\n{block}", encoding="utf-8")
    try:
        validate(policy)
    except Exception:
        policy.write_text(before, encoding="utf-8")
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_label_arguments(parser)
    parser.add_argument("--policy", type=Path, default=POLICY, help="the relevance policy file to write")
    parser.add_argument("--min-posts", type=int, default=20, help="fewest calibrate posts in a block of the map")
    parser.add_argument("--dry-run", action="store_true", help="print the block, do not write it")
    args = parser.parse_args(argv)
    items, problems = load_items(args.labels, args.written, args.data)
    calibrate = [i for i in items if i.split == "calibrate"]
    enricher = Enricher()
    if RelevanceScorer(enricher.lexicons).model is not None:
        # in-sample probabilities of a fitted model are over-confident; its map comes from out-of-fold ones
        print("the learned layer is in use: run bench/relevance_fit.py, which calibrates on out-of-fold predictions")
        return 2
    pairs = [(enricher.enrich(i.text).relevance.raw, i.label) for i in calibrate]
    fitted = [(raw, y) for raw, y in pairs if raw > 0]
    if not fitted:
        print("no calibrate post has any evidence: nothing to fit", file=sys.stderr)
        return 1
    blocks = fit_isotonic(fitted, args.min_posts)
    knots = knots_of(blocks)
    names = []
    for path in (args.labels, args.written):
        if path.is_file():
            try:
                names.append(str(path.resolve().relative_to(REPO)))
            except ValueError:
                names.append(str(path))
    labels = " + ".join(names)
    block = "\n".join(
        [
            "calibration:",
            "  method: isotonic",
            f'  fitted_at: "{datetime.now(UTC).date().isoformat()}"',
            f'  labels: "{labels}"',
            f"  labels_sha256: {labels_sha256(args.labels, args.written)}  # of the files above, in that order",
            "  split: calibrate",
            f"  posts: {len(fitted)}        # calibrate posts with some evidence (the others score 0)",
            f"  relevant: {sum(y for _, y in fitted)}",
            "  knots:                      # [raw noisy-or, probability relevant], linear in between",
            *(f"    - [{x}, {y}]" for x, y in knots),
            "",
        ]
    )
    print(f"calibrate split: {len(calibrate)} posts ({len(problems)} label rows skipped), {len(fitted)} with evidence")
    print("blocks (raw from..to: posts, relevant):")
    for lo, hi, n, pos in blocks:
        print(f"  {lo:.4f}..{hi:.4f}: {n:4d} {pos:4d}")
    print(block)
    if not args.dry_run:
        write_block(args.policy, block)
        print(f"written to {args.policy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
