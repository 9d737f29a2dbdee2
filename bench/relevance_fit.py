"""Fit the learned layer of the relevance score on the calibrate half, calibrate it out of fold, write both.

    .venv/bin/python bench/relevance_fit.py [--labels ...] [--written ...] [--data ../shared/data] [--dry-run]
        [--ngrams 0,150,300] [--min-df 3] [--l2 0.0003,0.001,0.003,0.01,0.03] [--folds 5] [--seeds 20261130,7,99]

Only the calibrate half is read (the report half is never loaded into the fit). Per post, the features are the
rule criteria the policy fires (`corruption:<category>`, `official`, `official_conduct` ...), the cue families of
`lexicons/relevance_model.yaml` (hand-written; a family with `alone: false` counts only through its combinations),
the combinations there (`combo:<name>`: every group of criteria/families has a member in the post) and up to
`--ngrams` character 2-3-grams chosen for how well they separate the labels (smoothed log-odds × √document
frequency, at least `--min-df` posts), found by the same one-pass matcher the scorer uses. A logistic regression
with an L2 penalty is fitted by projected Nesterov gradient descent in pure Python; criteria, cue and combination
weights are kept ≥ 0 (evidence only adds), n-gram weights take any sign.

The L2 strength and the n-gram cap (`--ngrams`: the caps tried; 0 = criteria and cue families only) are chosen by
event-grouped k-fold cross-validation on the calibrate half (every post of one Weibo event in one fold; the n-grams
are chosen again inside each fold; the measures averaged over the `--seeds` fold assignments), by the sum of the
issue's two measures out of fold: F1 at its best threshold, and recall where precision is at least 0.9 (ties go to
fewer n-grams, then the stronger penalty). As in the scorer, a post whose only positive features are n-grams scores
0: n-grams are context, not evidence. For each setting it also prints precision and recall at the policy's
thresholds out of fold (each fold's probabilities through an isotonic map fitted on the other folds'). The
out-of-fold probabilities of the chosen setting (first seed) are what the isotonic calibration is fitted on (so
that the map does not trust the model's in-sample confidence); then the model is refitted on the whole calibrate
half and written below the marker of `relevance_model.yaml`, and the map into `relevance.yaml`
(`bench/relevance_calibrate.py`'s block writer). Both files are loaded and validated afterwards, and restored when
that fails.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qingfeng.safe_yaml import load_yaml
from qingfeng.text import load_lexicons, prepare
from qingfeng.text.relevance import SCAN_WINDOW, RelevanceScorer, calibrate, pooled
from qingfeng.text.relevance_model import BUILTIN_MODEL, MARKER, Finder, combo_groups, load_model, matcher
from qingfeng.text.tagging import Tagger
from relevance_calibrate import POLICY, fit_isotonic, knots_of, write_block
from relevance_eval import (
    REPO,
    Item,
    add_label_arguments,
    labels_sha256,
    load_items,
    metrics,
)

__all__ = ["Dataset", "fit_logistic", "main", "select_ngrams"]

_CJK = re.compile(r"[\u4e00-\u9fff]+")
# particles and pronouns: an n-gram holding one says how a post is written, not what it is about (了一, 的官)
_FUNCTION_CHARS = frozenset("了的是我你他她它们吗啊呢吧么着地得之")


class Dataset:
    """The calibrate posts as the fit sees them: simplified text, rule criteria fired, label, event group."""

    def __init__(
        self,
        items: Sequence[Item],
        data: Path,
        cues: dict[str, list[str]],
        combos: dict[str, tuple[frozenset[str], ...]] | None = None,
        context_only: frozenset[str] = frozenset(),
    ) -> None:
        lexicons = load_lexicons()
        rules = RelevanceScorer(lexicons, model=None)  # the policy's criteria alone
        tagger = Tagger(lexicons)
        event_of = _events(data, {i.id for i in items})
        self.texts = [prepare(i.text) for i in items]
        self.labels = [i.label for i in items]
        self.groups = [event_of.get(i.id, i.id) for i in items]
        self.criteria: list[set[str]] = []
        for text in self.texts:
            rel = rules.score(tagger.tag(text), text)
            self.criteria.append(pooled({r.criterion for r in rel.reasons if r.weight > 0}))
        self.cues = cues
        self.combos = combos or {}
        self.context_only = frozenset(f"cue:{family}" for family in context_only)
        """Cue families (``alone: false``) that are features only through a combination."""

    def features(self, i: int, finder: Finder, feature_of: dict[str, str]) -> set[str]:
        found = set(self.criteria[i])
        found.update(feature_of[m] for m in finder.all(self.texts[i][:SCAN_WINDOW]))
        # a combination fires when each of its groups has a member here (as LearnedModel.combined does)
        found.update(f"combo:{name}" for name, groups in self.combos.items() if all(g & found for g in groups))
        return found - self.context_only if self.context_only else found


def _events(data: Path, ids: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with (data / "weibo_posts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["id"] in ids:
                out[row["id"]] = row["event_id"]
    return out


def _grams(text: str) -> set[str]:
    out: set[str] = set()
    for run in _CJK.findall(text):
        for n in (2, 3):
            out.update(run[k : k + n] for k in range(len(run) - n + 1))
    return {g for g in out if not _FUNCTION_CHARS.intersection(g)}


def select_ngrams(texts: Sequence[str], labels: Sequence[int], cap: int, min_df: int) -> list[str]:
    """The ``cap`` n-grams (document frequency ≥ ``min_df``) with the largest |smoothed log-odds| × √df."""
    pos: Counter[str] = Counter()
    neg: Counter[str] = Counter()
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    for text, label in zip(texts, labels, strict=True):
        (pos if label else neg).update(_grams(text))
    ranked = []
    for gram in pos.keys() | neg.keys():
        a, b = pos[gram], neg[gram]
        if a + b < min_df:
            continue
        log_odds = math.log((a + 0.5) / (n_pos + 1)) - math.log((b + 0.5) / (n_neg + 1))
        ranked.append((-abs(log_odds) * math.sqrt(a + b), gram))
    ranked.sort()
    return [gram for _, gram in ranked[:cap]]


def fit_logistic(
    rows: Sequence[Sequence[int]], labels: Sequence[int], dim: int, l2: float, signed: set[int], iters: int = 800
) -> tuple[list[float], float]:
    """Weights and bias of an L2-penalised logistic regression over binary features (``rows``: indices of the
    features present). Features outside ``signed`` are kept ≥ 0. Projected Nesterov gradient descent."""
    n = len(rows)
    step = 1.0 / (0.25 * (max((len(r) for r in rows), default=0) + 1) + l2)
    w = [0.0] * (dim + 1)  # the last one is the bias, not penalised
    prev = w[:]
    for t in range(1, iters + 1):
        momentum = (t - 1) / (t + 2)
        z = [a + momentum * (a - b) for a, b in zip(w, prev, strict=True)]
        grad = [0.0] * (dim + 1)
        for row, y in zip(rows, labels, strict=True):
            s = z[dim] + sum(z[k] for k in row)
            d = (1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, s)))) - y) / n
            grad[dim] += d
            for k in row:
                grad[k] += d
        prev = w
        w = [z[k] - step * (grad[k] + l2 * z[k]) for k in range(dim)] + [z[dim] - step * grad[dim]]
        for k in range(dim):
            if k not in signed and w[k] < 0.0:
                w[k] = 0.0
    return w[:dim], w[dim]


class _Fitted:
    def __init__(self, ds: Dataset, train: Sequence[int], cap: int, min_df: int, l2: float) -> None:
        self.ngrams = select_ngrams([ds.texts[i] for i in train], [ds.labels[i] for i in train], cap, min_df)
        self.feature_of, self.finder = matcher(ds.cues, self.ngrams)
        feats = [ds.features(i, self.finder, self.feature_of) for i in train]
        self.names = sorted(set().union(*feats)) if feats else []
        index = {name: k for k, name in enumerate(self.names)}
        signed = {k for name, k in index.items() if name.startswith("ngram:")}
        rows = [[index[f] for f in fs] for fs in feats]
        weights, self.bias = fit_logistic(rows, [ds.labels[i] for i in train], len(self.names), l2, signed)
        self.weights = dict(zip(self.names, weights, strict=True))

    def predict(self, ds: Dataset, i: int) -> float:
        """The model's probability, or 0 when no feature speaks for relevance (as the scorer does)."""
        found = ds.features(i, self.finder, self.feature_of)
        present = [self.weights.get(f, 0.0) for f in found]
        if not any(self.weights.get(f, 0.0) > 0 for f in found if not f.startswith("ngram:")):
            return 0.0  # n-grams alone are context, not evidence: as the scorer does
        s = self.bias + sum(present)
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, s))))


def _folds(groups: Sequence[str], k: int, seed: int) -> list[int]:
    distinct = sorted(set(groups))
    random.Random(seed).shuffle(distinct)
    fold_of = {g: n % k for n, g in enumerate(distinct)}
    return [fold_of[g] for g in groups]


def cross_validate(ds: Dataset, k: int, cap: int, min_df: int, l2: float, seed: int = 20261130) -> list[float]:
    fold = _folds(ds.groups, k, seed)
    oof = [0.0] * len(ds.labels)
    for f in range(k):
        train = [i for i in range(len(fold)) if fold[i] != f]
        model = _Fitted(ds, train, cap, min_df, l2)
        for i in range(len(fold)):
            if fold[i] == f:
                oof[i] = model.predict(ds, i)
    return oof


def _log_loss(p: Sequence[float], y: Sequence[int]) -> float:
    eps = 1e-4
    return -sum(math.log(max(eps, q) if t else max(eps, 1 - q)) for q, t in zip(p, y, strict=True)) / len(y)


def _best_f1(p: Sequence[float], y: Sequence[int]) -> tuple[float, float]:
    return max((metrics([q >= t for q in p], y).f1, t) for t in sorted(set(p)) if t > 0)


def _recall_at_precision(p: Sequence[float], y: Sequence[int], floor: float = 0.9) -> float:
    """The highest recall of "p >= t" over thresholds whose precision is at least ``floor``."""
    best = 0.0
    for t in sorted(set(p)):
        if t > 0:
            m = metrics([q >= t for q in p], y)
            if m.precision >= floor:
                best = max(best, m.recall)
    return best


def calibrated_out_of_fold(
    oof: Sequence[float], ds: Dataset, k: int, min_posts: int, seed: int = 20261130
) -> list[float]:
    """What the policy's score would be out of fold: each fold's model probabilities through an isotonic map fitted
    on the other folds' out-of-fold probabilities (as the written map is fitted on all of them), so that precision
    and recall at the policy's thresholds can be read on the calibrate half without trusting any in-sample step."""
    fold = _folds(ds.groups, k, seed)
    out = [0.0] * len(oof)
    for f in range(k):
        pairs = [(round(p, 4), y) for p, y, g in zip(oof, ds.labels, fold, strict=True) if g != f and p > 0]
        knots = tuple(knots_of(fit_isotonic(pairs, min_posts)))
        for i, g in enumerate(fold):
            if g == f and oof[i] > 0:
                out[i] = round(calibrate(knots, round(oof[i], 4)), 4)
    return out


def _at(scores: Sequence[float], labels: Sequence[int], t: float) -> str:
    m = metrics([s >= t for s in scores], labels)
    return f"P {m.precision:.3f} R {m.recall:.3f} F1 {m.f1:.3f}"


def _model_block(fitted: _Fitted, ds: Dataset, l2: float, cv_f1: float, labels: str, digest: str) -> str:
    crit = {n.split(":", 1)[1] if n.startswith("criterion:") else n: w for n, w in fitted.weights.items()}
    criteria = {n: w for n, w in crit.items() if not n.startswith(("cue:", "ngram:", "combo:")) and w > 1e-4}
    cues = {n[4:]: w for n, w in fitted.weights.items() if n.startswith("cue:") and w > 1e-4}
    combos = {n[6:]: w for n, w in fitted.weights.items() if n.startswith("combo:") and w > 1e-4}
    grams = {n[6:]: w for n, w in fitted.weights.items() if n.startswith("ngram:") and abs(w) > 1e-3}
    lines = [
        "fit:",
        f'  fitted_at: "{datetime.now(UTC).date().isoformat()}"',
        f'  labels: "{labels}"',
        f"  labels_sha256: {digest}",
        "  split: calibrate",
        f"  posts: {len(ds.labels)}",
        f"  relevant: {sum(ds.labels)}",
        f"  l2: {l2}",
        f"  cv_f1: {round(cv_f1, 4)}",
        f"bias: {round(fitted.bias, 4)}",
        "criteria:                   # rule criterion -> log-odds weight (>= 0)",
        *(f"  {n}: {round(w, 4)}" for n, w in sorted(criteria.items(), key=lambda x: -x[1])),
        "cue_weights:                # cue family -> log-odds weight (>= 0)",
        *(f"  {n}: {round(w, 4)}" for n, w in sorted(cues.items(), key=lambda x: -x[1])),
        "combo_weights:              # combination -> log-odds weight (>= 0)" if combos else "combo_weights: {}",
        *(f"  {n}: {round(w, 4)}" for n, w in sorted(combos.items(), key=lambda x: -x[1])),
        "ngrams:                     # n-gram -> log-odds weight (any sign)" if grams else "ngrams: {}",
        *(f'  "{g}": {round(w, 4)}' for g, w in sorted(grams.items(), key=lambda x: -x[1])),
        "",
    ]
    if not criteria:
        lines[lines.index("criteria:                   # rule criterion -> log-odds weight (>= 0)")] = "criteria: {}"
    if not cues:
        lines[lines.index("cue_weights:                # cue family -> log-odds weight (>= 0)")] = "cue_weights: {}"
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_label_arguments(parser)
    parser.add_argument("--model", type=Path, default=BUILTIN_MODEL, help="the model file to write")
    parser.add_argument("--policy", type=Path, default=POLICY, help="the relevance policy whose map is written")
    parser.add_argument("--ngrams", default="0,150,300", help="n-gram caps to try (chosen by cross-validation)")
    parser.add_argument("--min-df", type=int, default=3)
    parser.add_argument("--l2", default="0.0003,0.001,0.003,0.01,0.03")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--seeds",
        default="20261130,7,99",
        help="fold assignments to average the measures over (the first one's out-of-fold probabilities are calibrated)",
    )
    parser.add_argument("--min-posts", type=int, default=20, help="fewest posts in a block of the calibration map")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--errors", action="store_true", help="list calibrate posts misjudged out of fold")
    args = parser.parse_args(argv)
    items, _ = load_items(args.labels, args.written, args.data)
    calibrate = [i for i in items if i.split == "calibrate"]  # the report half stops here
    model_text = args.model.read_text(encoding="utf-8").split(MARKER, 1)[0]
    hand = load_yaml(model_text, source=str(args.model))
    cues = {f: list(c["words"]) for f, c in (hand.get("cues") or {}).items()}
    combos = {n: combo_groups(c["groups"]) for n, c in (hand.get("combos") or {}).items()}
    context_only = frozenset(f for f, c in (hand.get("cues") or {}).items() if c.get("alone", True) is False)
    ds = Dataset(calibrate, args.data, cues, combos, context_only)
    print(f"calibrate half: {len(ds.labels)} posts, {sum(ds.labels)} relevant, {len(set(ds.groups))} event groups")
    results = []
    seeds = [int(x) for x in args.seeds.split(",")]
    for cap in (int(x) for x in args.ngrams.split(",")):
        for l2 in (float(x) for x in args.l2.split(",")):
            # the measures averaged over fold assignments (one seed's folds move a few posts' fate); the first
            # seed's out-of-fold probabilities are what the calibration map is fitted on
            runs = []
            for seed in seeds:
                oof_s = cross_validate(ds, args.folds, cap, args.min_df, l2, seed)
                policy = calibrated_out_of_fold(oof_s, ds, args.folds, args.min_posts, seed)
                at8 = metrics([q >= 0.8 for q in policy], ds.labels)
                at5 = metrics([q >= 0.5 for q in policy], ds.labels)
                runs.append((oof_s, _best_f1(oof_s, ds.labels), _recall_at_precision(oof_s, ds.labels), at8, at5))
            oof = runs[0][0]
            f1 = sum(r[1][0] for r in runs) / len(runs)
            r90 = sum(r[2] for r in runs) / len(runs)
            results.append((_log_loss(oof, ds.labels), l2, f1, runs[0][1][1], oof, cap, r90))

            def mean(values: list[float]) -> float:
                return sum(values) / len(values)

            p8, r8 = mean([r[3].precision for r in runs]), mean([r[3].recall for r in runs])
            p5, r5, f5 = (
                mean([r[4].precision for r in runs]),
                mean([r[4].recall for r in runs]),
                mean([r[4].f1 for r in runs]),
            )
            print(
                f"  n-grams {cap:<4d} l2 {l2:<6g} out-of-fold log-loss {results[-1][0]:.4f}, best F1 {f1:.3f}, "
                f"recall at precision >= 0.9: {r90:.3f}; calibrated out of fold >= 0.8: P {p8:.3f} R {r8:.3f}, "
                f">= 0.5: P {p5:.3f} R {r5:.3f} F1 {f5:.3f} (mean of {len(seeds)} fold seeds)",
                flush=True,
            )
    # by the two measures out of fold: F1 at the best threshold plus recall where precision is >= 0.9 (what
    # the policy's 0.8 should pass); ties to fewer n-grams and the stronger penalty
    _, l2, cv_f1, _, oof, cap, r90 = max(results, key=lambda r: (round(r[2] + r[6], 3), -r[5], r[1]))
    print(f"chosen: {cap} n-grams, l2 {l2:g} (out-of-fold F1 {cv_f1:.3f}, recall at precision >= 0.9 {r90:.3f})")
    if args.errors:
        policy = calibrated_out_of_fold(oof, ds, args.folds, args.min_posts, seeds[0])
        for cut in (0.8, 0.5):
            print(f"misjudged out of fold at a calibrated {cut} (calibrate half; p: model probability, s: calibrated):")
            for item, p, s, text in zip(calibrate, oof, policy, ds.texts, strict=True):
                if (s >= cut) != bool(item.label):
                    print(f"  {item.id} label={item.label} {item.kind} p={p:.3f} s={s:.3f} {text[:90]!r}")
    fitted = _Fitted(ds, range(len(ds.labels)), cap, args.min_df, l2)
    names = " + ".join(str(p.resolve().relative_to(REPO)) for p in (args.labels, args.written) if p.is_file())
    digest = labels_sha256(args.labels, args.written)
    block = _model_block(fitted, ds, l2, cv_f1, names, digest)
    pairs = [(round(p, 4), y) for p, y in zip(oof, ds.labels, strict=True) if p > 0]
    blocks = fit_isotonic(pairs, args.min_posts)
    knots = knots_of(blocks)
    print("calibration blocks on out-of-fold probabilities (from..to: posts, relevant):")
    for lo, hi, n, pos in blocks:
        print(f"  {lo:.4f}..{hi:.4f}: {n:4d} {pos:4d}")
    calibration = "\n".join(
        [
            "calibration:",
            "  method: isotonic",
            f'  fitted_at: "{datetime.now(UTC).date().isoformat()}"',
            f'  labels: "{names}"',
            f"  labels_sha256: {digest}  # of the files above, in that order",
            "  split: calibrate",
            f"  posts: {len(pairs)}        # calibrate posts with some evidence, out-of-fold model probabilities",
            f"  relevant: {sum(y for _, y in pairs)}",
            "  knots:                      # [model probability, probability relevant], linear in between",
            *(f"    - [{x}, {y}]" for x, y in knots),
            "",
        ]
    )
    if args.dry_run:
        print(block)
        print(calibration)
        return 0
    write_block(args.model, block, marker=MARKER, validate=load_model)
    write_block(args.policy, calibration)
    print(f"written to {args.model} and {args.policy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
