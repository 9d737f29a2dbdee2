"""How the relevance model's out-of-fold F1 grows with the labelled posts it is fitted on (calibrate half only).

    .venv/bin/python bench/relevance_learning_curve.py [--shares 0.25,0.5,0.75,1] [--ngrams 150] [--l2 0.0003]

The same event-grouped 5-fold cross-validation as ``relevance_fit.py`` (the shipped m2 setting by default), except
that each fold's model is fitted on only a share of the other folds' event groups (drawn per fold and seed); the
held-out fold is always scored whole. Printed per share: the mean best F1 over the three fold assignments and recall
where precision is at least 0.9. It answers whether more labels of the same kind would reach the issue's F1 ≥ 0.9:
each doubling of the training posts adds what the curve shows, and the shared file holds ~7,200 text-bearing posts.
The report half is never loaded.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qingfeng.safe_yaml import load_yaml
from qingfeng.text.relevance_model import BUILTIN_MODEL, MARKER, combo_groups
from relevance_eval import add_label_arguments, load_items
from relevance_fit import Dataset, _best_f1, _Fitted, _folds, _recall_at_precision

_SEEDS = (20261130, 7, 99)
_FOLDS = 5


def _dataset(args: argparse.Namespace) -> Dataset:
    items, _ = load_items(args.labels, args.written, args.data)
    calibrate = [i for i in items if i.split == "calibrate"]  # the report half stops here
    hand = load_yaml(BUILTIN_MODEL.read_text(encoding="utf-8").split(MARKER, 1)[0], source=str(BUILTIN_MODEL))
    cues = {f: list(c["words"]) for f, c in (hand.get("cues") or {}).items()}
    combos = {n: combo_groups(c["groups"]) for n, c in (hand.get("combos") or {}).items()}
    context_only = frozenset(f for f, c in (hand.get("cues") or {}).items() if c.get("alone", True) is False)
    return Dataset(calibrate, args.data, cues, combos, context_only)


def out_of_fold(ds: Dataset, share: float, seed: int, cap: int, l2: float) -> list[float]:
    """Out-of-fold probabilities with each fold's model fitted on ``share`` of the other folds' event groups."""
    fold = _folds(ds.groups, _FOLDS, seed)
    rng = random.Random(seed + 1)
    oof = [0.0] * len(ds.labels)
    for f in range(_FOLDS):
        groups = sorted({ds.groups[i] for i in range(len(fold)) if fold[i] != f})
        keep = set(rng.sample(groups, max(1, round(share * len(groups)))))
        train = [i for i in range(len(fold)) if fold[i] != f and ds.groups[i] in keep]
        model = _Fitted(ds, train, cap, 3, l2)
        for i in range(len(fold)):
            if fold[i] == f:
                oof[i] = model.predict(ds, i)
    return oof


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_label_arguments(parser)
    parser.add_argument("--shares", default="0.25,0.5,0.75,1", help="shares of the training groups to fit on")
    parser.add_argument("--ngrams", type=int, default=150)
    parser.add_argument("--l2", type=float, default=0.0003)
    args = parser.parse_args(argv)
    ds = _dataset(args)
    print(f"calibrate half: {len(ds.labels)} posts, {sum(ds.labels)} relevant, {len(set(ds.groups))} event groups")
    for share in (float(x) for x in args.shares.split(",")):
        if not 0 < share <= 1:
            parser.error(f"a share is in (0, 1]: {share}")
        runs = [out_of_fold(ds, share, seed, args.ngrams, args.l2) for seed in _SEEDS]
        f1s = [_best_f1(oof, ds.labels)[0] for oof in runs]
        r90 = sum(_recall_at_precision(oof, ds.labels) for oof in runs) / len(runs)
        posts = round(share * len(ds.labels) * (_FOLDS - 1) / _FOLDS)
        print(
            f"share {share:.2f} (~{posts} training posts a fold): best F1 {sum(f1s) / len(f1s):.3f} "
            f"({', '.join(f'{x:.3f}' for x in f1s)}), recall at precision >= 0.9 {r90:.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
