"""Benchmark of the collector's enrichment + dedupe path alone (no Kafka, no Elasticsearch), one process.

    .venv/bin/python bench/bench_enrichment.py [--data DIR] [--limit N] [--repeat R] [--long-texts FILE]
    .venv/bin/python bench/bench_enrichment.py --against REF [--repeat R]   # before/after ratios in one run

Reads DIR/weibo_posts.jsonl (default: $QF_SHARED_DATA, else ../shared/data relative to the repo root), then:

1. times each stage on its own over all texts (conversion, tagging, segmentation + keywords, relevance, dedupe),
2. times the whole per-post step the collector calls (services.collector.core.enrich_post) with a fresh
   deduper per round, and prints posts/s by wall clock and by CPU time of this process (= per core),
3. reports characters per second per core (CPU time) of the same step on posts of >= 60 characters and on the
   long-text fixture (tests/fixtures/long_texts/articles.jsonl: news, forum threads and WeChat-style articles of
   500-5,000 characters, title and body enriched together as the collector does) and on real text made long: the
   shared posts of >= 20 characters, distinct, joined in file order into texts of about 2,000 characters (built at
   run time, never stored). The fixture repeats its sentences (about half its 3-character shingles recur within an
   article), which real articles rarely do; the joined posts show real text's rate.
4. times the same posts through services.collector.core.enrich_posts, which takes each stage over a batch of
   STAGE_BATCH posts before the next stage (same results; the stages keep their tables in the CPU caches).

With --against REF (a git commit or branch), the text kernel and the collector's enrich/dedupe step as they were at
REF are extracted to a temporary package and timed against the working tree's, rounds alternating, on the same texts:
on a shared machine a ratio measured so is worth more than two figures from different runs. The working tree is timed
one post at a time (enrich_post) and in batches (enrich_posts), REF one post at a time. --sets picks the text sets.

Targets: >= 20,000 posts/s per core (issue 3); >= 2 million characters/s per core on long texts (issue 12).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so that `services` imports when run as a script from anywhere

from qingfeng.text import Enricher, content_hash, normalize_for_hash, prepare, simhash64, strip_noise  # noqa: E402

from services.collector.core import DedupeConfig, Deduper, RawPost, enrich_post, enrich_posts  # noqa: E402

TARGET = 20_000
TARGET_CHARS = 2_000_000
LONG_TEXTS = REPO / "tests" / "fixtures" / "long_texts" / "articles.jsonl"


def _default_data() -> Path:
    env = os.environ.get("QF_SHARED_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def _load(data: Path, limit: int | None) -> list[tuple[str, str, datetime]]:
    posts = []
    with (data / "weibo_posts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            posts.append((row["id"], row["text"] or "", datetime.fromisoformat(row["created_at"])))
            if limit is not None and len(posts) >= limit:
                break
    return posts


def _load_long(path: Path) -> list[tuple[str, str, str, datetime]]:
    """(id, title, text, created_at) of the long-text fixture."""
    now = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["id"], row["title"], row["text"], now) for row in rows]


def _joined(posts: Sequence[tuple[str, str, datetime]], size: int = 2_000) -> list[tuple[str, str, str, datetime]]:
    """Distinct shared posts of >= 20 characters joined, in file order, into texts of about ``size`` characters."""
    out: list[tuple[str, str, str, datetime]] = []
    seen: set[str] = set()
    parts: list[str] = []
    length = 0
    for _, text, created_at in posts:
        if len(text) < 20 or text in seen:
            continue
        seen.add(text)
        parts.append(text)
        length += len(text) + 1
        if length >= size:
            out.append((f"joined-{len(out)}", "", "\n".join(parts), created_at))
            parts, length = [], 0
    return out


def _chars_per_s(
    enricher: Enricher, posts: Sequence[tuple[str, str, str, datetime]], repeat: int, *, batched: bool = False
) -> float:
    """Characters (title + text) per CPU second of enrich_post (or enrich_posts when ``batched``), best of ``repeat``
    rounds, fresh deduper each."""
    chars = sum(len(title) + len(text) for _, title, text, _ in posts)
    run = _batched(enrich_posts, RawPost) if batched else _one_by_one(enrich_post)
    best = float("inf")
    for _ in range(repeat):
        deduper = Deduper()
        enricher.clear_cache()  # each round sees repeats only within its own stream, as a fresh process would
        start = time.process_time()
        run(posts, enricher, deduper)
        best = min(best, time.process_time() - start)
    return chars / best


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Best of ``repeat`` CPU-time runs (the least disturbed by other processes on the machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _stages(enricher: Enricher, texts: Sequence[str], repeat: int) -> list[tuple[str, float]]:
    """CPU seconds of each stage over all ``texts`` (best of ``repeat``), each stage run alone over the whole batch.

    Run alone a stage keeps its tables in the CPU caches; inside the whole step (one text through every stage) each
    costs more, so the sum of stages is below the whole step's time.
    """
    simplified = [prepare(t) for t in texts]
    tagger, segmenter, scorer = enricher.tagger, enricher.segmenter, enricher._scorer
    terms = tagger.terms
    tags = [tagger.tag(s) for s in simplified]
    cfg = DedupeConfig()

    def fingerprint() -> None:
        for s in simplified:
            strip_noise(s)  # as in the collector, where the keywords have just stripped the same text
            canonical = normalize_for_hash(s, simplified=True)
            content_hash(canonical)
            if len(canonical) >= cfg.min_chars:
                simhash64(canonical, cfg.shingle_size)

    return [
        ("convert (width + OpenCC t2s)", _time(lambda: [prepare(t) for t in texts], repeat)),
        ("tag (4 Aho-Corasick automata)", _time(lambda: [tagger.tag(s) for s in simplified], repeat)),
        (
            "segment + keywords (rjieba)",
            _time(lambda: [segmenter.keywords(segmenter.cut(strip_noise(s)), 8, terms) for s in simplified], repeat),
        ),
        (
            "relevance (scorer, with the text)",
            _time(lambda: [scorer.score(t, s) for t, s in zip(tags, simplified, strict=True)], repeat),
        ),
        ("dedupe: normalise + hash + simhash", _time(fingerprint, repeat)),
    ]


def _print_stages(stages: list[tuple[str, float]], n: int, chars: int, unit: str) -> None:
    total = sum(seconds for _, seconds in stages)
    for name, seconds in stages:
        print(
            f"  {name:38s} {seconds * 1e6 / n:9.2f} us/{unit}  {n / seconds:>10,.0f} {unit}s/s  "
            f"{chars / seconds / 1e6:6.2f} M chars/s  {seconds / total:5.1%}"
        )
    print(
        f"  {'sum of stages':38s} {total * 1e6 / n:9.2f} us/{unit}  {n / total:>10,.0f} {unit}s/s  "
        f"{chars / total / 1e6:6.2f} M chars/s"
    )


def _pipeline(
    enricher: Enricher, posts: Sequence[tuple[str, str, datetime]], repeat: int, *, batched: bool = False
) -> tuple[float, float, Counter[str]]:
    best_cpu, best_wall, kinds = float("inf"), float("inf"), Counter[str]()
    raw = [RawPost(pid, text, ts) for pid, text, ts in posts]
    for _ in range(repeat):
        deduper = Deduper()
        enricher.clear_cache()  # each round sees repeats only within its own stream, as a fresh process would
        wall, cpu = time.perf_counter(), time.process_time()
        if batched:
            results = enrich_posts(raw, enricher=enricher, deduper=deduper)
        else:
            results = [enrich_post(pid, text, ts, enricher=enricher, deduper=deduper) for pid, text, ts in posts]
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
        kinds = Counter(r.dedupe.kind.value for r in results)
    return best_cpu, best_wall, kinds


def _reference_step(ref: str, into: Path) -> tuple[Any, Any, Any]:
    """(Enricher, Deduper, enrich_post) of the code at git ``ref``, imported from a copy under ``into``."""
    package = into / "qf_reference_text"
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "archive",
            ref,
            "libs/qingfeng/text",
            "services/collector/core/dedupe.py",
            "services/collector/core/enrich.py",
        ],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    shutil.move(into / "libs" / "qingfeng" / "text", package)
    for name in ("dedupe.py", "enrich.py"):
        shutil.move(into / "services" / "collector" / "core" / name, package / name)
    for source in package.glob("*.py"):
        code = source.read_text(encoding="utf-8").replace("services.collector.core.dedupe", "qf_reference_text.dedupe")
        source.write_text(code.replace("qingfeng.text", "qf_reference_text"), encoding="utf-8")
    sys.path.insert(0, str(into))
    text = importlib.import_module("qf_reference_text")
    return (
        text.Enricher,
        importlib.import_module("qf_reference_text.dedupe").Deduper,
        importlib.import_module("qf_reference_text.enrich").enrich_post,
    )


def _batched(step: Any, raw_post: Any) -> Callable[..., Any]:
    """enrich_posts as a step over a whole list of (post_id, title, text, created_at)."""

    def run(items: Sequence[tuple[str, str, str, datetime]], enricher: Any, deduper: Any) -> list[Any]:
        raw = [raw_post(pid, text, ts, title) for pid, title, text, ts in items]
        result: list[Any] = step(raw, enricher=enricher, deduper=deduper)
        return result

    return run


def _one_by_one(step: Any) -> Callable[..., Any]:
    def run(items: Sequence[tuple[str, str, str, datetime]], enricher: Any, deduper: Any) -> list[Any]:
        # the results are kept, as enrich_posts keeps them (and the collector keeps each post): dropping them at once
        # spares the garbage collector the walks over a growing heap, about 10 % of the short posts' time
        return [step(pid, text, ts, title=title, enricher=enricher, deduper=deduper) for pid, title, text, ts in items]

    return run


SETS = ("fixture", "joined", "long-posts", "all-posts")


def _against(
    ref: str, posts: Sequence[tuple[str, str, datetime]], articles: Sequence[Any], repeat: int, names: Sequence[str]
) -> None:
    """Whole step, working tree (one by one and in batches) vs ``ref`` (one by one), alternating rounds; best CPU
    time of each side."""
    with tempfile.TemporaryDirectory() as tmp:
        ref_enricher_type, ref_deduper, ref_enrich_post = _reference_step(ref, Path(tmp))
        sides = {
            ref: (ref_enricher_type(), ref_deduper, _one_by_one(ref_enrich_post)),
            "working tree": (Enricher(), Deduper, _one_by_one(enrich_post)),
            "batched": (Enricher(), Deduper, _batched(enrich_posts, RawPost)),
        }
        long_posts = [(pid, "", text, ts) for pid, text, ts in posts if len(text) >= 60]
        sets = {
            "fixture": ("long-text fixture", list(articles)),
            "joined": ("shared posts joined (~2,000 chars)", _joined(posts)),
            "long-posts": ("shared posts >= 60 chars", long_posts),
            "all-posts": ("all shared posts", [(pid, "", text, ts) for pid, text, ts in posts]),
        }
        print(f"\nwhole step, working tree against {ref} (CPU time, best of {repeat} alternating rounds):")
        for key in names:
            name, items = sets[key]
            chars = sum(len(title) + len(text) for _, title, text, _ in items)
            best = dict.fromkeys(sides, float("inf"))
            for round_ in range(repeat):
                for side in sides if round_ % 2 == 0 else reversed(list(sides)):
                    enricher, deduper_type, run = sides[side]
                    if hasattr(enricher, "clear_cache"):
                        enricher.clear_cache()
                    deduper = deduper_type()
                    start = time.process_time()
                    run(items, enricher, deduper)
                    best[side] = min(best[side], time.process_time() - start)
            old = best[ref]
            figures = "  ".join(
                f"{side}: {chars / best[side] / 1e6:5.2f} M chars/s ({len(items) / best[side]:,.0f}/s, "
                f"{old / best[side]:.2f}x)"
                for side in sides
            )
            print(f"  {name:36s} n={len(items):6d}  {figures}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=_default_data(), help="directory with weibo_posts.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N posts")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per measurement (best is reported)")
    parser.add_argument("--long-texts", type=Path, default=LONG_TEXTS, help="JSONL of long articles (fixture)")
    parser.add_argument("--against", metavar="REF", help="only compare the whole step with the code at git REF")
    parser.add_argument(
        "--sets", default=",".join(SETS), help=f"with --against: comma-separated text sets among {', '.join(SETS)}"
    )
    args = parser.parse_args(argv)
    if not (args.data / "weibo_posts.jsonl").is_file():
        print(f"no weibo_posts.jsonl under {args.data} (set QF_SHARED_DATA or --data)", file=sys.stderr)
        return 2

    posts = _load(args.data, args.limit)
    if args.against:
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        names = [name for name in args.sets.split(",") if name]
        unknown = sorted(set(names) - set(SETS))
        if unknown:
            print(f"unknown --sets {', '.join(unknown)} (known: {', '.join(SETS)})", file=sys.stderr)
            return 2
        _against(args.against, posts, _load_long(args.long_texts), args.repeat, names)
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
    texts = [text for _, text, _ in posts]
    n = len(posts)
    chars = sum(map(len, texts))
    start = time.perf_counter()
    enricher = Enricher()
    print(f"enricher built in {time.perf_counter() - start:.2f} s; lexicons {enricher.lexicons.version}")
    print(
        f"{n} posts, mean {chars / n:.1f} chars, median {statistics.median(map(len, texts)):.0f}, "
        f"{sum(1 for t in texts if not t) / n:.1%} empty"
    )

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    enrich_post(*posts[0], enricher=enricher, deduper=Deduper())  # warm the OpenCC and rjieba singletons
    print("\nper stage, shared posts (CPU time, best of rounds, each stage alone over all posts):")
    _print_stages(_stages(enricher, texts, args.repeat), n, chars, "post")

    cpu, wall, kinds = _pipeline(enricher, posts, args.repeat)
    per_core = n / cpu
    print("\nwhole step (services.collector.core.enrich_post, fresh deduper per round):")
    print(
        f"  {per_core:,.0f} posts/s per core (CPU time)   {n / wall:,.0f} posts/s wall   "
        f"{chars / cpu / 1e6:.2f} M chars/s"
    )
    print(f"  dedupe: {dict(kinds)}")
    cpu_batched, wall_batched, _ = _pipeline(enricher, posts, args.repeat, batched=True)
    print(
        f"  in batches (enrich_posts): {n / cpu_batched:,.0f} posts/s per core (CPU time)   "
        f"{n / wall_batched:,.0f} posts/s wall   {chars / cpu_batched / 1e6:.2f} M chars/s"
    )

    long_posts = [p for p in posts if len(p[1]) >= 60]
    if long_posts:
        cpu_long, _, _ = _pipeline(enricher, long_posts, args.repeat)
        mean_long = sum(len(p[1]) for p in long_posts) / len(long_posts)
        cpu_long_batched, _, _ = _pipeline(enricher, long_posts, args.repeat, batched=True)
        long_chars = sum(len(p[1]) for p in long_posts)
        print(
            f"  long posts only (>= 60 chars, n={len(long_posts)}, mean {mean_long:.0f} chars): "
            f"{len(long_posts) / cpu_long:,.0f} posts/s per core, {long_chars / cpu_long / 1e6:.2f} M chars/s; "
            f"in batches {len(long_posts) / cpu_long_batched:,.0f} posts/s, {long_chars / cpu_long_batched / 1e6:.2f} M"
        )
    articles = _load_long(args.long_texts)
    sizes = [len(title) + len(text) for _, title, text, _ in articles]
    long_texts = [f"{title}\n{text}" for _, title, text, _ in articles]
    print(f"\nper stage, long texts ({args.long_texts.name}; the relevance share is the lead's to judge, issue 12):")
    _print_stages(_stages(enricher, long_texts, args.repeat), len(long_texts), sum(map(len, long_texts)), "text")
    per_core_chars = _chars_per_s(enricher, articles, args.repeat)
    batched_chars = _chars_per_s(enricher, articles, args.repeat, batched=True)
    print(
        f"  long texts ({args.long_texts.name}, n={len(articles)}, {min(sizes)}-{max(sizes)} chars, "
        f"mean {sum(sizes) / len(sizes):.0f}): {per_core_chars / 1e6:.2f} M chars/s per core, "
        f"{len(articles) / (sum(sizes) / per_core_chars):,.0f} articles/s; in batches (enrich_posts) "
        f"{batched_chars / 1e6:.2f} M chars/s"
    )
    joined = _joined(posts)
    if joined:
        per_core_joined = _chars_per_s(enricher, joined, args.repeat)
        batched_joined = _chars_per_s(enricher, joined, args.repeat, batched=True)
        print(
            f"  shared posts joined into ~2,000-char texts (n={len(joined)}): "
            f"{per_core_joined / 1e6:.2f} M chars/s per core; in batches {batched_joined / 1e6:.2f} M chars/s"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    posts_ok = per_core >= TARGET
    chars_ok = max(per_core_chars, batched_chars) >= TARGET_CHARS
    print(f"\n{'meets' if posts_ok else 'MISSES'} the target of {TARGET:,} posts/s per core")
    verdict = "meets" if chars_ok else "MISSES"
    how = "in batches" if batched_chars >= per_core_chars else "one post at a time"
    print(f"{verdict} the target of {TARGET_CHARS / 1e6:.0f} M chars/s per core on long texts (fixture, {how})")
    return 0 if posts_ok and chars_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
