"""Instructions, CPU time and outputs of the grader core, one post per call, for two trees.

    .venv/bin/python bench/bench_grader_instr.py --callgrind [--old DIR] [--limit 20000] [--rounds 1]
    .venv/bin/python bench/bench_grader_instr.py --digest [--old DIR]
    .venv/bin/python bench/bench_grader_instr.py --cpu [--old DIR] [--rounds 3]

The posts are those of ``bench/grading_eval.py --concurrent 24 --seed 1``: the shared data with every event moved to
start within 24 h, through the collector's enrichment and the grader's own conversion (bench/_pipeline.py), in the
four variants {parents kept, parent_id removed} x {counts as given, zeroed}. They are built once by this tree and
cached as pickles of the views under ``--cache`` (default /tmp/qf-grader-views), so each tree's child replays the
same ``PostView`` objects. A child imports the grader core of its tree (``--old DIR``: a copy made with ``git archive
HEAD | tar -x -C DIR``; PYTHONPATH=DIR/libs:DIR), applies the grader service's garbage-collector thresholds, moves
its input out of the collector's scans, and feeds a fresh ``Grader`` under the shipped policy one post per call
(``Grader.process``), reading each post's event after its call as grading_eval's replay does.

- ``--callgrind``: instructions per post under ``valgrind --tool=callgrind``, as the difference of a run over the
  first ``--limit`` posts and a run over none (start-up, imports and unpickling cancel), divided by ``--limit``; on
  the replays with parents, counts as given and zeroed (``--variants``). ``--keep DIR`` keeps the callgrind files
  (for callgrind_annotate).
- ``--digest``: a SHA-256 of every output of all posts (repr of each alert and snapshot in order, and each post's
  event id) per variant; the trees must agree (exit status 1 otherwise).
- ``--cpu``: posts/s of CPU time (``time.process_time`` around the replay loop: the machine is shared) over every
  post of the variants, trees alternating, ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANT_NAMES = ("parents", "parents-zeroed", "noparents", "noparents-zeroed")


# -- the parent: views, children ---------------------------------------------------------------------------------


def _build_views(cache: Path, hours: float, seed: int) -> None:
    """Pickle the four variants' views of the concurrent replay into `cache` (once)."""
    if all((cache / f"{name}.pkl").is_file() for name in VARIANT_NAMES):
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from _eval_replay import concurrent_rows
    from _pipeline import VARIANTS, collect, default_data_dir, read_rows, to_views, variant_posts

    rows, _ = concurrent_rows(read_rows(default_data_dir() / "weibo_posts.jsonl"), hours, seed)
    collected = collect(rows)
    cache.mkdir(parents=True, exist_ok=True)
    for name, variant in zip(VARIANT_NAMES, VARIANTS, strict=True):
        views = to_views(variant_posts(collected.posts, variant))
        with (cache / f"{name}.pkl").open("wb") as fh:
            pickle.dump(views, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"views of {len(rows)} posts cached in {cache}", file=sys.stderr)


def _child_cmd(args: argparse.Namespace, mode: str, variant: str, posts: int | None) -> list[str]:
    """A child's command line; `posts`: how many of the variant's posts it replays (None: all)."""
    return [sys.executable, __file__, "--child", mode, "--variant", variant, "--posts", str(posts),
            "--cache", str(args.cache)]  # fmt: skip


def _run(tree: Path, cmd: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'libs'}:{tree}", PYTHONHASHSEED="0")
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child for {tree} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["core"]).resolve() != (tree / "services" / "grader" / "core").resolve():
        raise SystemExit(f"child imported the core from {result['core']}, expected {tree}")
    return result


def _callgrind_ir(tree: Path, args: argparse.Namespace, variant: str, limit: int, keep: Path | None) -> int:
    with tempfile.TemporaryDirectory(prefix="qf-callgrind-") as tmp:
        out_file = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
        _run(tree, cmd + _child_cmd(args, "replay", variant, limit))
        totals = [line for line in out_file.read_text().splitlines() if line.startswith(("summary:", "totals:"))]
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            target = keep / f"callgrind.{tree.name}.{variant}.{limit}"
            target.write_bytes(out_file.read_bytes())
            print(f"  kept {target}")
    if not totals:
        raise SystemExit(f"no instruction total in the callgrind output of {tree}")
    return int(totals[-1].split()[1])


def _first(args: argparse.Namespace, variant: str) -> str:
    """The name of a cache of the variant's first `--limit` views (a callgrind child unpickles no more than it may
    replay: start-up under callgrind is most of its time)."""
    name = f"{variant}-first{args.limit}"
    path = args.cache / f"{name}.pkl"
    if not path.is_file():
        with (args.cache / f"{variant}.pkl").open("rb") as fh:
            views = pickle.load(fh)[: args.limit]
        with path.open("wb") as fh:
            pickle.dump(views, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return name


def _callgrind(trees: dict[str, Path], args: argparse.Namespace) -> int:
    for variant in args.variants.split(","):
        first = _first(args, variant)
        per_post: dict[str, list[float]] = {name: [] for name in trees}
        for round_ in range(args.rounds):
            order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
            for name, tree in order:
                base = _callgrind_ir(tree, args, first, 0, args.keep)
                full = _callgrind_ir(tree, args, first, args.limit, args.keep)
                per_post[name].append((full - base) / args.limit)
                print(f"{variant} round {round_ + 1} {name}: {per_post[name][-1]:,.0f} instructions/post "
                      f"({base:,} / {full:,})", flush=True)  # fmt: skip
        medians = {name: statistics.median(v) for name, v in per_post.items()}
        line = "  ".join(f"{name} {value:,.0f}" for name, value in medians.items())
        if len(medians) == 2:
            old, new = medians.values()
            line += f"  new/old {new / old:.3f} ({100 * (new - old) / old:+.1f} %)"
        print(f"{variant}, first {args.limit} posts, instructions/post: {line}")
    return 0


def _digest(trees: dict[str, Path], args: argparse.Namespace) -> int:
    status = 0
    for variant in args.variants.split(","):
        found = {name: _run(tree, _child_cmd(args, "digest", variant, None)) for name, tree in trees.items()}
        digests = {r["digest"] for r in found.values()}
        for name, r in found.items():
            print(f"{variant:17} {name}: {r['posts']} posts, {r['outputs']} outputs, sha256 {r['digest']}")
        if len(digests) != 1:
            print(f"{variant}: OUTPUTS DIFFER")
            status = 1
    return status


def _cpu(trees: dict[str, Path], args: argparse.Namespace) -> int:
    for variant in args.variants.split(","):
        rates: dict[str, list[float]] = {name: [] for name in trees}
        for round_ in range(args.rounds):
            order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
            for name, tree in order:
                r = _run(tree, _child_cmd(args, "replay", variant, None))
                rates[name].append(r["posts"] / r["cpu_s"])
        line = "; ".join(f"{name} " + " / ".join(f"{x:,.0f}" for x in v) for name, v in rates.items())
        print(f"{variant}: CPU-time posts/s {line}", flush=True)
    return 0


# -- the child: one replay ---------------------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> int:
    from qingfeng.gc_tuning import GcSettings, apply_gc_settings

    import services.grader.core as core
    from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
    from services.grader.core import ClusteringConfig, Grader, GraderConfig

    with (args.cache / f"{args.variant}.pkl").open("rb") as fh:
        every = pickle.load(fh)
    # The whole list stays alive whatever is replayed: a run over none and one over N differ by the replay only.
    views = every if args.posts == "None" else every[: int(args.posts)]
    config = GraderConfig()
    if not args.variant.startswith("parents"):
        config = GraderConfig(clustering=ClusteringConfig.for_lost_parents())
    grader = Grader(load_policy_file(DEFAULT_POLICY), config)
    apply_gc_settings(GcSettings(freeze_at_start=False))
    gc.collect()
    gc.freeze()  # the input is not the grader's state: out of the collector's scans (as grading_eval does)
    posts = grader.clusterer.posts
    process = grader.process
    result: dict[str, Any] = {"core": str(Path(core.__file__).parent), "posts": len(views)}
    if args.child == "digest":
        h = hashlib.sha256()
        outputs = 0
        for v in views:
            for out in process(v):
                h.update(repr(out).encode())
                outputs += 1
            h.update(f"|{v.id}>{posts.get(v.id)}\n".encode())
        result.update(digest=h.hexdigest(), outputs=outputs)
    else:
        t0 = time.process_time()
        for v in views:
            process(v)
            posts.get(v.id)
        result["cpu_s"] = time.process_time() - t0
    print(json.dumps(result))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--callgrind", action="store_true", help="instructions per post under callgrind")
    mode.add_argument("--digest", action="store_true", help="digests of every output, per variant")
    mode.add_argument("--cpu", action="store_true", help="CPU-time posts/s, trees alternating")
    mode.add_argument("--child", choices=("replay", "digest"), help=argparse.SUPPRESS)
    ap.add_argument("--old", type=Path, default=None, help="the tree to compare with (a git archive copy)")
    ap.add_argument("--limit", type=int, default=20_000, help="--callgrind: posts replayed (first N)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds, trees alternating")
    ap.add_argument("--variants", default="", help=f"comma-separated, of {','.join(VARIANT_NAMES)}")
    ap.add_argument("--variant", default="parents", help=argparse.SUPPRESS)
    ap.add_argument("--posts", default="None", help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=Path, default=None, help="--callgrind: keep the callgrind files here")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/qf-grader-views"), help="cached views")
    ap.add_argument("--hours", type=float, default=24.0, help="concurrent window of the replay")
    ap.add_argument("--seed", type=int, default=1, help="seed of the concurrent replay")
    args = ap.parse_args()
    if args.child:
        return _child(args)
    _build_views(args.cache, args.hours, args.seed)
    trees = {"new": ROOT} if args.old is None else {"old": args.old.resolve(), "new": ROOT}
    if args.callgrind:
        args.variants = args.variants or "parents,parents-zeroed"
        return _callgrind(trees, args)
    args.variants = args.variants or ",".join(VARIANT_NAMES)
    if args.digest:
        return _digest(trees, args)
    if args.cpu:
        return _cpu(trees, args)
    ap.error("choose --callgrind, --digest or --cpu")
    return 2


if __name__ == "__main__":
    sys.exit(main())
