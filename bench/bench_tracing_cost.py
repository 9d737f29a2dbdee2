"""Benchmark: what tracing costs the collector's pipeline (enrich + dedupe + produce, acked), as CPU per post.

    .venv/bin/python bench/bench_tracing_cost.py [--rounds 3] [--limit 20000] [--otlp-endpoint URL]

Runs `bench/bench_collector_e2e.py`'s pipeline measurement in a fresh process per mode (a process installs its tracer
provider once), alternating off / default / full for ``--rounds`` rounds, and prints each run's posts/s and the
process CPU per post (all threads: the span exporter's included). On a machine shared with other work the posts/s
swing with the load; CPU per post is the steadier measure of the cost. With ``--otlp-endpoint`` (the local Jaeger of
`qingfeng stack up --with-jaeger`) spans are really exported. ``--modes off,default`` runs a subset;
``QF_BENCH_RATIO=0.1`` measures "default" at another ratio than the settings' default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

MODES = ("off", "default", "full")


def _one(mode: str, limit: int, otlp: str | None) -> dict[str, float]:
    """In this process: set up tracing as `mode`, warm the caches, run the pipeline benchmark, measure CPU."""
    import bench_collector_e2e as e2e
    from qingfeng.settings import TelemetrySettings
    from qingfeng.telemetry import setup_tracing, shutdown_tracing

    from services.collector.app import build_enricher

    if mode != "off":
        ratio = 1.0 if mode == "full" else float(os.environ.get("QF_BENCH_RATIO", TelemetrySettings().sample_ratio))
        setup_tracing(TelemetrySettings(sample_ratio=ratio, otlp_endpoint=otlp), process="collector")
    build_enricher(e2e._settings("warm"))
    cpu = time.process_time()
    posts, elapsed = asyncio.run(e2e.bench_pipeline(e2e._default_data(), limit, False))
    shutdown_tracing()  # the exporter's last batches count too
    cpu = time.process_time() - cpu
    return {"posts": posts, "posts_s": posts / elapsed, "cpu_us_per_post": cpu / posts * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--otlp-endpoint", default=None)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of off,default,full")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one measurement, in a child process
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(_one(args.mode, args.limit, args.otlp_endpoint)))
        return 0
    modes = [m for m in MODES if m in args.modes.split(",")]
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            argv = [sys.executable, __file__, "--mode", mode, "--limit", str(args.limit)]
            if args.otlp_endpoint:
                argv += ["--otlp-endpoint", args.otlp_endpoint]
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results[mode].append(result)
            print(f"{mode:8s} {result['posts_s']:8.0f} posts/s  {result['cpu_us_per_post']:6.1f} us CPU per post")
    base = statistics.median(r["cpu_us_per_post"] for r in results["off"])
    for mode in modes:
        cpu = statistics.median(r["cpu_us_per_post"] for r in results[mode])
        rate = statistics.median(r["posts_s"] for r in results[mode])
        extra = (cpu / base - 1) * 100
        print(f"median {mode:8s} {rate:8.0f} posts/s  {cpu:6.1f} us CPU per post  ({extra:+5.1f} % CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
