"""Evaluate event detection and grading on a file in the format of shared/data/weibo_posts.jsonl.

    .venv/bin/python bench/grading_eval.py [--data ../shared/data/weibo_posts.jsonl] [--concurrent 24 --seed 1]
        [--split event|year:YYYY] [--json OUT] [--policy FILE] [--only all|parents|noparents] [--limit N]

`weibo_events.jsonl` beside the data file is the ground truth (one row per event). The posts go through the real
pipeline in process and in event time (bench/_pipeline.py): JSONL parser -> collector enrichment and dedupe ->
Post -> grader conversion -> grader core. `event_id` and `label` are removed before parsing. Four replays:

    {parents kept, parent_id removed} x {reposts/comments/likes as given, zeroed}

"parent_id removed" also clears root_id and runs the clustering with `ClusteringConfig.for_lost_parents()`;
"parents kept" uses the default config. Each replay is graded by the grader's own clustering and by three trivial
clusterings through the same grader (bench/_eval_baselines.py): parent-following, newest-event, all-singletons.

`--concurrent HOURS --seed N`: every event is moved to start at a seeded random instant within HOURS, keeping its
own timing; the ground truth moves with it (bench/_eval_replay.py). In the file as given the events mostly follow
one another, which flatters any clustering that joins "the newest event"; a real stream carries many at once.

`--split`: the policy's volume thresholds are calibrated (one scale factor, a small grid) on one part of the events
and every row is scored on the other part only: `event` = a seeded half (`--split-seed`), `year:YYYY` = events
before YYYY calibrate. `--report calibration` scores the calibration part instead (where a rule may be chosen).
Without `--split` the policy is used as shipped and scored on every event (in-sample: its thresholds were set on
this development set).

Columns: B-cubed P/R/F1 of the predicted events (after merges) against `event_id` over every post, and over the
text-bearing posts only (own words >= 15 characters, see `_eval_replay.own_words`); Spearman between each event's
highest level (that of its majority event, the predicted event holding most of its posts; 0 when never alerted) and
its size at 24 h; "early": among the largest events (top `--top-share`) the share whose first orange/red alert came
before the event reached half its 24 h size; posts/s of the grader core, one post per call. Below: levels reached,
the rising flag (how often a flag is followed by a higher level within the golden period; over the whole replay, not
only the scored part), Spearman per year, and red (特别严重) on the `--red-top` largest cascades replayed alone with and
without injected posts announcing a gathering or petition (bench/_eval_red.py; red must fire only with them).

The leak check (shuffling `event_id`/`label` changes no prediction) is a test: tests/bench/test_eval_honesty.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _eval_baselines import BASELINES, baseline
from _eval_candidates import halves, print_candidates, print_profile, probe_policy
from _eval_candidates import record as record_metrics
from _eval_candidates import score as score_candidate
from _eval_explain import explain_early, missed_top, print_explain
from _eval_red import red_demo
from _eval_relevance import event_labels, event_relevance, first_posts, print_event_relevance
from _eval_replay import OWN_WORDS_MIN, concurrent_rows, event_split, text_bearing
from _eval_scores import Scores, TruthEvent, average_ranks, half_size_time, score, spearman, truth_events
from _eval_search import record, search
from _pipeline import (
    VARIANTS,
    Collected,
    Variant,
    collect,
    converter,
    default_data_dir,
    grader_config,
    read_rows,
    replay,
    to_views,
    variant_posts,
)
from qingfeng.gc_tuning import GcSettings, apply_gc_settings

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
from services.grader.core import Policy

__all__ = ["average_ranks", "half_size_time", "main", "predictions", "scaled_policy", "spearman"]

# Criteria on these metrics count volume; calibration scales their thresholds (levels above the lowest).
VOLUME_METRICS = frozenset({"posts", "distinct_authors", "velocity", "comments", "reposts", "likes"})
SCALES = (0.5, 0.7, 1.0, 1.4, 2.0)


def scaled_policy(policy: Policy, factor: float) -> Policy:
    """The policy with every volume threshold of the levels above the lowest multiplied by `factor`."""
    if factor == 1.0:
        return policy
    levels = [policy.levels[0]]
    for lv in policy.levels[1:]:
        scale = [replace(c, threshold=c.threshold * factor) if c.metric in VOLUME_METRICS else c for c in lv.criteria]
        req = [replace(c, threshold=c.threshold * factor) if c.metric in VOLUME_METRICS else c for c in lv.require]
        levels.append(replace(lv, criteria=tuple(scale), require=tuple(req)))
    return replace(policy, levels=tuple(levels), version=f"{policy.version}*{factor:g}")


def predictions(collected: Collected, variant: Variant, policy: Policy) -> tuple[dict[str, str], list[Any]]:
    """What the grader predicts on one replay: native post id -> event, and every alert as plain tuples."""
    result = replay(to_views(variant_posts(collected.posts, variant)), policy, grader_config(variant.parents))
    native_of = {p.id: p.native_id for p in collected.posts}
    alerts = [(a.event_id, a.from_level, a.to_level, a.at.isoformat(), a.sequence) for a in result.alerts]
    return {native_of[k]: v for k, v in result.assigned.items()}, alerts


def quiet_collector(enabled: bool) -> None:
    """Move every object alive now (the rows, the collector's posts, the views about to be replayed) out of the
    garbage collector's scans, before a timed replay.

    A live grader holds its own state, not a file of posts. Measured with ~480,000 input objects alive (all
    four variants' views): a full collection walking them cost ~0.25 s of CPU in a replay with parents (~5 % of
    it); without parents more, smaller collections add up to about the same total either way, dominated by the
    grader's own state, which stays scanned. `--gc-scan-input` keeps the old behaviour."""
    if enabled:
        gc.collect()
        gc.freeze()


def service_gc(enabled: bool) -> str:
    """The garbage collector's thresholds the grader process runs with (``QF_GRADER_GC__*`` defaults) when
    ``enabled``, else CPython's; returns a note for the header. Full collections walk the grader's whole state: with
    CPython's thresholds they were about half the CPU of the no-parent replays, which the service does not pay."""
    if not enabled:
        return f"garbage collector: CPython's thresholds {gc.get_threshold()} (--gc python)"
    settings = GcSettings(freeze_at_start=False)  # the input is frozen by quiet_collector, per replay
    thresholds = apply_gc_settings(settings)
    return f"garbage collector: the grader service's thresholds {thresholds} (QF_GRADER_GC__*; --gc python: CPython's)"


def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else format(x, spec)


def print_table(scores: list[Scores], top_share: float) -> None:
    early_head = f"top {top_share:.0%} early"
    head = (
        f"{'replay / clustering':34} {'events':>6} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6} {'txt P':>6} {'txt R':>6} "
        f"{'txt F1':>6} {'Spearman':>8} {early_head:>16} {'lead h':>6} {'posts/s':>8}"
    )
    print(head)
    print("-" * len(head))
    variant = None
    for s in scores:
        if s.variant != variant:
            variant = s.variant
            print(variant)
        early = f"{s.early}/{s.top_events} ({s.early / s.top_events:.0%})" if s.top_events else "n/a"
        print(
            f"  {s.method:32} {s.predicted_events:6d} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} "
            f"{_fmt(s.text_precision):>6} {_fmt(s.text_recall):>6} {_fmt(s.text_f1):>6} "
            f"{_fmt(s.spearman):>8} {early:>16} {_fmt(s.median_lead_h, '.1f'):>6} {s.grader_posts_per_s:8.0f}"
        )


def print_red(rows: list[dict[str, Any]], events: dict[str, TruthEvent], policy: Policy, top: int) -> None:
    """Red on the largest cascades replayed alone, with and without injected offline-action posts (_eval_red)."""
    size24 = {e: ev.size24 for e, ev in events.items()}
    print(f"red (特别严重) on the {top} largest cascades replayed alone (parents kept), with 6 injected reposts")
    print("announcing a gathering or petition (bench/_eval_red.py) and without them:")
    for counts in (True, False):
        cases = red_demo(rows, size24, policy, top=top, counts=counts)
        plain = sum(c.level_plain == "red" for c in cases)
        red = [c for c in cases if c.level_injected == "red"]
        name = "counts as given" if counts else "counts zeroed"
        print(f"  {name}: red without injection {plain}/{len(cases)}, with injection {len(red)}/{len(cases)}")
        for c in red[:3]:
            print(f"    event {c.event_id} (24 h size {c.size24}): " + "; ".join(c.red_reasons))


def calibrate(
    collected: Collected, policy: Policy, calib: dict[str, TruthEvent], ctx: dict[str, Any], top_share: float
) -> tuple[Policy, list[str]]:
    """The scale factor (SCALES) maximising Spearman + early share on the calibration events, on the first
    variant's replay with the grader's clustering; ties go to the factor nearest 1."""
    variant = VARIANTS[0]
    views = to_views(variant_posts(collected.posts, variant))
    lines, best, best_key = [], policy, None
    for factor in SCALES:
        candidate = scaled_policy(policy, factor)
        result = replay(views, candidate, grader_config(variant.parents))
        s = score(variant.name, "grader", result, events=calib, top_share=top_share, **ctx)
        early = s.early / s.top_events if s.top_events else 0.0
        objective = (0.0 if math.isnan(s.spearman) else s.spearman) + early
        lines.append(f"x{factor:g}: Spearman {_fmt(s.spearman)} early {early:.2f} -> {objective:.3f}")
        key = (-objective, abs(math.log(factor)))
        if best_key is None or key < best_key:
            best, best_key = candidate, key
    return best, lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir() / "weibo_posts.jsonl", help="posts JSONL file")
    ap.add_argument("--events", type=Path, default=None, help="ground truth (default: weibo_events.jsonl beside it)")
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="grading policy YAML")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--limit", type=int, default=0, help="only the first N posts (of the file, before any shift)")
    ap.add_argument("--top-share", type=float, default=0.10, help="share of largest events for the early column")
    ap.add_argument("--only", choices=("all", "parents", "noparents"), default="all", help="which replays")
    ap.add_argument("--concurrent", type=float, default=0.0, metavar="HOURS", help="start every event within HOURS")
    ap.add_argument("--seed", type=int, default=1, help="seed of the concurrent replay")
    ap.add_argument("--split", default="", help="calibrate on one part, report on the other: event | year:YYYY")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of --split event")
    ap.add_argument(
        "--report",
        choices=("held-out", "calibration"),
        default="held-out",
        help="with --split: score the held-out part (default) or the calibration part (to choose a rule on)",
    )
    ap.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated trivial clusterings ('' none)")
    ap.add_argument("--red-top", type=int, default=20, help="largest cascades for the red demonstration (0: none)")
    ap.add_argument(
        "--gc",
        choices=("service", "python"),
        default="service",
        help="garbage collector thresholds during the replays: the grader service's (default) or CPython's",
    )
    ap.add_argument(
        "--gc-scan-input",
        action="store_true",
        help="leave the benchmark's own input in the garbage collector's scans during timed replays (as before)",
    )
    ap.add_argument(
        "--search-criteria",
        action="store_true",
        help="with --split: search each yellow/orange threshold on the calibration part (recommendation only)",
    )
    ap.add_argument(
        "--explain-early",
        action="store_true",
        help="for each top event of the first replay missing an early orange/red alert: which orange criteria held",
    )
    ap.add_argument(
        "--candidates",
        type=Path,
        nargs="*",
        default=None,
        metavar="POLICY",
        help="with --split and --report calibration: score these policy files (and the given one) on the calibration "
        "part from one recorded replay of the first variant (bench/_eval_candidates.py)",
    )
    ap.add_argument(
        "--profile-top",
        action="store_true",
        help="with --report calibration: the top events' metrics at 25 %% and 50 %% of their 24 h size",
    )
    args = ap.parse_args(argv)
    if (args.candidates is not None or args.profile_top) and not (args.split and args.report == "calibration"):
        print("--candidates and --profile-top choose on the calibration part: pass --split and --report calibration",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.data.is_file():
        print(f"no data file {args.data} (set QF_SHARED_DATA or pass --data)", file=sys.stderr)
        return 2
    events_path = args.events or args.data.parent / "weibo_events.jsonl"
    if not events_path.is_file():
        print(f"no ground truth {events_path} beside the data (pass --events)", file=sys.stderr)
        return 2
    methods = ["grader", *(b for b in args.baselines.split(",") if b)]
    unknown = [m for m in methods[1:] if m not in BASELINES]
    if unknown:
        print(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}", file=sys.stderr)
        return 2
    policy = load_policy_file(args.policy)
    rows = read_rows(args.data, args.limit)
    offsets: dict[str, float] = {}
    scenario = "as in the file"
    if args.concurrent > 0:
        rows, offsets = concurrent_rows(rows, args.concurrent, args.seed)
        scenario = f"concurrent: every event starts within {args.concurrent:g} h (seed {args.seed})"
    truth_post = {r["id"]: r["event_id"] for r in rows}
    events = truth_events(events_path, rows, offsets)
    text_posts = {r["id"] for r in rows if text_bearing(r.get("text") or "")}
    convert, convert_from = converter()
    collected = collect(rows)
    native_of = {p.id: p.native_id for p in collected.posts}
    golden = policy.golden_period_seconds
    ctx: dict[str, Any] = {"native_of": native_of, "truth_post": truth_post, "text_posts": text_posts}
    ctx["golden_s"] = golden
    print(
        f"{len(rows)} posts ({len(text_posts)} text-bearing: own words >= {OWN_WORDS_MIN} chars), {len(events)} "
        f"events from {args.data}; timing {scenario}; conversion: {convert_from}"
    )
    print(
        f"collector: {len(collected.posts)} posts out ({collected.duplicates} marked duplicates, "
        f"{collected.rejected} rejected)"
    )
    report = calib = events
    calib_note = f"thresholds: policy {policy.version} as shipped, scored on every event (in-sample)"
    if args.split:
        keys = [f"{events[e].year}|{e}" for e in events] if args.split.startswith("year:") else list(events)
        calib_keys, report_keys, how = event_split(keys, args.split, args.split_seed)
        strip = (lambda k: k.split("|", 1)[1]) if args.split.startswith("year:") else (lambda k: k)
        calib = {strip(k): events[strip(k)] for k in calib_keys}
        report = {strip(k): events[strip(k)] for k in report_keys}
        policy, grid = calibrate(collected, policy, calib, ctx, args.top_share)
        print(f"calibration on {len(calib)} events ({how}); grid (objective Spearman + early share, first replay):")
        print("  " + "; ".join(grid))
        calib_note = f"thresholds: {policy.version} chosen on the calibration part; scored on the other {len(report)}"
        if args.report == "calibration":
            report = calib
            calib_note = f"thresholds: {policy.version} chosen on the calibration part; scored on it ({len(calib)})"
        if args.search_criteria:
            views = to_views(variant_posts(collected.posts, VARIANTS[0]))
            rec = record(views, policy, grader_config(True), native_of, truth_post, calib)
            kept, log = search(rec, policy, calib, args.top_share, seed=args.split_seed)
            print(f"per-criterion search on the {len(calib)} calibration events ({VARIANTS[0].name}):")
            print("  " + "; ".join(log))
            thresholds = {(lv.warning_level, f"{c.metric}@{c.window}"): c.threshold for lv in policy.levels
                          for c in lv.criteria}  # fmt: skip
            for (level, crit), factor in sorted(kept.items()):
                print(
                    f"  recommended: {level} {crit} {thresholds[level, crit]:g} -> {thresholds[level, crit] * factor:g}"
                )
    print(f"policy {policy.version} ({args.policy.name}); {calib_note}")
    print("parent_id removed rows use ClusteringConfig.for_lost_parents(); parents kept rows the default config")
    print(service_gc(args.gc == "service"))
    print()
    variants = {
        "all": VARIANTS,
        "parents": tuple(v for v in VARIANTS if v.parents),
        "noparents": tuple(v for v in VARIANTS if not v.parents),
    }[args.only]
    scores: list[Scores] = []
    relevance_rows: list[tuple[str, Any]] = []
    first_post = first_posts(rows)
    labels = event_labels(truth_post, first_post)
    convert_s = 0.0
    for variant in variants:
        t0 = time.perf_counter()
        views = to_views(variant_posts(collected.posts, variant), convert)
        convert_s = convert_s or time.perf_counter() - t0
        config = grader_config(variant.parents)
        quiet_collector(not args.gc_scan_input)
        for method in methods:
            clusterer = None if method == "grader" else baseline(method, config.clustering)
            result = replay(views, policy, config, clusterer=clusterer)
            scores.append(score(variant.name, method, result, events=report, top_share=args.top_share, **ctx))
            if method == "grader" and variant.counts:
                er = event_relevance(result, views, native_of, truth_post, first_post, report, labels)
                relevance_rows.append((variant.name, er))
    print_table(scores, args.top_share)
    print()
    if args.explain_early:
        variant = variants[0]
        views = to_views(variant_posts(collected.posts, variant), convert)
        config = grader_config(variant.parents)
        first_replay = replay(views, policy, config)
        # Diagnosed on the calibration part (what a policy change may be chosen on), never on the reported part.
        missed = missed_top(first_replay, native_of, truth_post, calib, args.top_share)
        orange = next(lv for lv in policy.levels if lv.warning_level == "orange")
        print(f"{variant.name}, grader, on the {len(calib)} calibration events:")
        print_explain(explain_early(views, policy, config, first_replay, missed, calib), orange.at_least)
        print()
    if args.candidates is not None or args.profile_top:
        candidates = [(path.name, load_policy_file(path)) for path in args.candidates or ()]
        probe = probe_policy(policy, [c for _, c in candidates])
        named = [(f"{policy.version} (as run above)", policy), *candidates]
        for variant in variants:
            views = to_views(variant_posts(collected.posts, variant), convert)
            rec = record_metrics(views, probe, grader_config(variant.parents), native_of, truth_post, calib)
            print(f"{variant.name}, grader, on the {len(calib)} calibration events (recorded once, no replay each):")
            if args.profile_top and variant is variants[0]:
                print_profile(rec, policy, calib, args.top_share)
            print_candidates(
                [score_candidate(n, rec, c, calib, args.top_share) for n, c in named],
                [[score_candidate(n, rec, c, h, args.top_share) for n, c in named] for h in halves(calib, args.seed)],
            )
            print()
    for s in scores:
        print(f"  {s.variant:34} {s.method:16} " + " ".join(f"{k}={v}" for k, v in s.levels.items()))
    for name, er in relevance_rows:
        print_event_relevance(name, er)
    print(f"rising flag: raised / followed by a higher level within the golden period ({golden / 3600:g} h):")
    for s in (s for s in scores if s.method == "grader"):
        share = f"{s.rising_escalated / s.rising_flags:.0%}" if s.rising_flags else "n/a"
        print(f"  {s.variant:34} {s.rising_flags} / {s.rising_escalated} ({share})")
    print("Spearman per year of the source post (events), grader:")
    for s in (s for s in scores if s.method == "grader"):
        print(f"  {s.variant:34} " + " ".join(f"{y}:{_fmt(rho, '.2f')}({n})" for y, (n, rho) in s.by_year.items()))
    if args.red_top:
        print_red(rows, events, policy, args.red_top)
    n = len(rows)
    first = scores[0]
    grader_s = n / first.grader_posts_per_s if first.grader_posts_per_s else math.nan
    total = collected.parse_s + collected.enrich_s + convert_s + grader_s
    print(
        f"throughput (first row, one process): parse {n / collected.parse_s:,.0f} posts/s, "
        f"collector enrich+dedupe {n / collected.enrich_s:,.0f} posts/s, "
        f"convert {n / convert_s:,.0f} posts/s, grader {n / grader_s:,.0f} posts/s; "
        f"whole pipeline {n / total:,.0f} posts/s"
    )
    if args.json:
        out = {
            "data": str(args.data),
            "posts": n,
            "text_bearing_posts": len(text_posts),
            "events": len(events),
            "scored_events": len(report),
            "scenario": scenario,
            "calibration": calib_note,
            "policy": policy.version,
            "conversion": convert_from,
            "top_share": args.top_share,
            "rows": [s.__dict__ for s in scores],
            "throughput_posts_per_s": {
                "parse": n / collected.parse_s,
                "collector": n / collected.enrich_s,
                "convert": n / convert_s,
                "grader": n / grader_s,
                "pipeline": n / total,
            },
        }
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2, allow_nan=True) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
