"""Side by side: the grader and ElastAlert2 on the same replay, against the same local Elasticsearch.

    .venv/bin/python bench/elastalert_compare.py [--data FILE] [--limit N] [--counts zeroed|given]
                                                 [--query-key root_id|grader_event] [--keep]

Needs the local stack (`qingfeng stack up`; Elasticsearch at $QF_TEST_ES, default http://127.0.0.1:19200).

1. **ElastAlert2** (PyPI `elastalert2`, pinned in bench/elastalert/requirements.txt) lives in its own venv,
   ~/.cache/qingfeng/elastalert-venv ($QF_ELASTALERT_VENV), created on the first run: its pinned dependencies
   (the elasticsearch 7.10 client among them) conflict with the project's. Its releases since 2.20 need Python
   3.12+, found as $QF_ELASTALERT_PYTHON, python3.13/python3.12 on PATH, or under pyenv's versions.
2. **The grader** replays the file through the real pipeline in event time (bench/_pipeline.py: collector
   enrichment and dedupe, grader conversion, grader core), repost parents kept, per-post counts zeroed by default
   (`--counts given` to keep the crawl-time numbers). Ground truth is never fed in.
3. **The same posts** are indexed into a fresh index `qfea-<run>-posts` with their event-time `@timestamp`, the
   cascade root (`root_id`: the source post reached through the parent chain, which a microblog API gives with
   every repost, e.g. Weibo's `retweeted_status`) and the grader's final event id (`grader_event`).
   The default query_key is `root_id`, the fairest one for ElastAlert2: it groups each cascade exactly, with no
   help from our clustering and none of its mistakes (`--query-key grader_event` compares alert logic alone).
4. **ElastAlert2 runs in backfill** (`elastalert --verbose --start … --end …`) over the whole replay with three
   rules (bench/elastalert/rules/): frequency 30 posts in 1 h (≈ the grader's yellow), frequency 20 posts in 10 min
   (≈ the speed criterion of orange) and spike ×3 over 1 h with at least 20 posts (bench/elastalert/qf_rules.py
   adds the time the spike fired). Its alerter is `command`, appending each match as JSON to a file: no network.
   It talks to Elasticsearch through a loopback shim (127.0.0.1 only, see `_Shim`): this Elasticsearch
   distribution answers `GET /` with 405, and ElastAlert2 learns the server's version from `GET /` (`info()`);
   the shim answers `GET /` and `HEAD /` with the version from `/_nodes/_local` and forwards every other request
   verbatim. (ElastAlert2 also honours an `ES_VERSION` variable; the shim keeps `ping()` working as well.)
5. **Time to alert** is measured in event time from each ground-truth event's first post: for the grader, the
   time of the post that raised its majority event (see grading_eval.py) to the level; for ElastAlert2, the
   `@timestamp` of the post that completed a frequency match, or `qf_fired_at` of a spike. Live, ElastAlert2
   would add up to `run_every` (1 min by default) plus the query delay; that is not counted here.

The run's indices are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _pipeline import (  # noqa: E402
    Variant,
    collect,
    converter,
    default_data_dir,
    first_alerts,
    grader_config,
    majority,
    read_rows,
    replay,
    to_views,
    variant_posts,
)
from elasticsearch import Elasticsearch, helpers  # noqa: E402

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file  # noqa: E402

EA_DIR = HERE / "elastalert"
VENV = Path(os.environ.get("QF_ELASTALERT_VENV", Path.home() / ".cache" / "qingfeng" / "elastalert-venv"))
RULES = {  # rule name -> (file, grader level it is compared with)
    "qf-frequency-30-in-1h": ("frequency_30_in_1h.yaml", "yellow"),
    "qf-frequency-20-in-10m": ("frequency_20_in_10m.yaml", "orange"),
    "qf-spike-3x-in-1h": ("spike_3x_in_1h.yaml", "orange"),
}


# -- the ElastAlert2 venv ----------------------------------------------------------------------------------------


def _python_ok(exe: str) -> bool:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print(sys.version_info >= (3, 12))"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def find_python() -> str:
    """A Python >= 3.12 for the ElastAlert2 venv."""
    candidates = [os.environ.get("QF_ELASTALERT_PYTHON", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.13", "python3.12")]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.1[2-9]*/bin/python3"), reverse=True)
    candidates.append(sys.executable)
    for exe in candidates:
        if exe and _python_ok(exe):
            return exe
    raise SystemExit("ElastAlert2 2.20+ needs Python >= 3.12: set QF_ELASTALERT_PYTHON to one")


def ensure_venv() -> str:
    """Create the venv and install the pinned ElastAlert2 on first use; return its version."""
    elastalert = VENV / "bin" / "elastalert"
    if not elastalert.exists():
        python = find_python()
        print(f"[setup] creating {VENV} with {python} (first run only)", flush=True)
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
        print(f"[setup] pip install -r {EA_DIR / 'requirements.txt'} (progress below)", flush=True)
        subprocess.run([*pip, "install", "--progress-bar", "on", "-r", str(EA_DIR / "requirements.txt")], check=True)
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('elastalert2'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# -- the loopback shim -------------------------------------------------------------------------------------------


class _Shim(ThreadingHTTPServer):
    """127.0.0.1-only HTTP proxy to Elasticsearch that answers `GET /` and `HEAD /` itself (see the docstring)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        url = urllib.parse.urlsplit(upstream)
        self.upstream = (url.hostname or "127.0.0.1", url.port or 9200)
        self.info = json.dumps(self._info()).encode()
        self.requests = 0
        super().__init__(("127.0.0.1", 0), _ShimHandler)

    def _info(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        conn.request("GET", "/_nodes/_local")
        body = json.loads(conn.getresponse().read())
        conn.close()
        node = next(iter(body["nodes"].values()))
        return {
            "name": node["name"],
            "cluster_name": body.get("cluster_name", ""),
            "version": {
                "number": node["version"],
                "build_flavor": node.get("build_flavor", "default"),
                "build_type": node.get("build_type", ""),
                "build_hash": node.get("build_hash", ""),
            },
            "tagline": "You Know, for Search",
        }


class _ShimHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Shim

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        self.server.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.path in ("/", "") and self.command in ("GET", "HEAD"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-elastic-product", "Elasticsearch")
            self.send_header("Content-Length", str(len(self.server.info)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(self.server.info)
            return
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "keep-alive")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


# -- the replay --------------------------------------------------------------------------------------------------


def roots(posts: Sequence[Any]) -> dict[str, str]:
    """Post id -> id of the cascade's source post, through the parent chain (as a microblog API reports it)."""
    parent = {p.id: p.parent_id for p in posts}
    out: dict[str, str] = {}
    for pid in parent:
        chain = []
        cur = pid
        while cur not in out and parent.get(cur):
            chain.append(cur)
            cur = parent[cur]
            if len(chain) > 10_000:
                break  # a cycle in bad data: stop where we are
        root = out.get(cur, cur)
        for c in chain:
            out[c] = root
        out.setdefault(pid, root)
    return out


def index_posts(es: Elasticsearch, index: str, docs: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    kw = {"type": "keyword"}
    es.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        mappings={
            "dynamic": False,
            "properties": {
                "@timestamp": {"type": "date"},
                "post_id": kw,
                "root_id": kw,
                "grader_event": kw,
                "author": kw,
            },
        },
    )
    actions = ({"_index": index, "_id": d["post_id"], "_source": d} for d in docs)
    _, errors = helpers.bulk(es.options(request_timeout=120), actions, chunk_size=5000, raise_on_error=False)
    if isinstance(errors, list) and errors:
        raise SystemExit(f"indexing failed for {len(errors)} posts, first: {errors[0]}")
    es.indices.put_settings(index=index, settings={"refresh_interval": "1s"})
    es.indices.refresh(index=index)
    return time.perf_counter() - t0


def run_elastalert(
    run_dir: Path,
    shim_port: int,
    index: str,
    writeback: str,
    query_key: str,
    start: datetime,
    end: datetime,
    timeout: float,
) -> float:
    """Write the config and rules, create the writeback index, run the backfill (matches-<rule>.jsonl files);
    returns how long the backfill took."""
    rules_dir = run_dir / "rules"
    rules_dir.mkdir(parents=True)
    for name, (file, _) in RULES.items():
        matches = run_dir / f"matches-{name}.jsonl"
        matches.touch()
        text = (EA_DIR / "rules" / file).read_text(encoding="utf-8")
        text = text.replace("__INDEX__", index).replace("__QUERY_KEY__", query_key)
        (rules_dir / file).write_text(text.replace("__MATCHES__", str(matches)), encoding="utf-8")
    config = run_dir / "config.yaml"
    config.write_text(
        "\n".join(
            [
                f"rules_folder: {rules_dir}",
                "run_every: {minutes: 1}",  # the main loop exits one run_every after a backfill's end
                "buffer_time: {days: 30}",  # query segment size of the backfill
                "es_host: 127.0.0.1",
                f"es_port: {shim_port}",
                f"writeback_index: {writeback}",
                "alert_time_limit: {days: 3650}",
                "old_query_limit: {days: 3650}",
                "max_query_size: 10000",
                "scroll_keepalive: 5m",
                "disable_rules_on_error: false",
                "",
            ]
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(EA_DIR)}
    env.pop("ES_VERSION", None)  # the version comes from the shim
    bindir = VENV / "bin"
    log = run_dir / "elastalert.log"
    with log.open("w") as fh:
        subprocess.run(
            [str(bindir / "elastalert-create-index"), "--config", str(config), "--index", writeback],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
            timeout=300,
        )
        fmt = "%Y-%m-%dT%H:%M:%S+00:00"
        args = [
            str(bindir / "elastalert"),
            "--config",
            str(config),
            "--verbose",
            "--pin_rules",
            "--start",
            start.strftime(fmt),
            "--end",
            end.strftime(fmt),
        ]
        t0 = time.perf_counter()
        try:
            subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, env=env, check=True, timeout=timeout, cwd=run_dir)
        except subprocess.CalledProcessError as err:
            raise SystemExit(f"elastalert failed ({err.returncode}); log: {log}") from err
        except subprocess.TimeoutExpired as err:
            raise SystemExit(f"elastalert did not finish within {timeout:.0f} s; log: {log}") from err
    took = time.perf_counter() - t0
    # Each rule logs "Ran <rule> from … to …" once its backfill is complete. (Tracebacks "cannot schedule new futures
    # after shutdown" in the log are APScheduler's next cycle meeting the exit; they come after the runs.)
    text = log.read_text(encoding="utf-8", errors="replace")
    missing = [name for name in RULES if f"Ran {name} from" not in text]
    if missing:
        raise SystemExit(f"elastalert did not complete rules {', '.join(missing)}; log: {log}")
    return took


def _ts(value: Any) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def read_matches(run_dir: Path, query_key: str) -> dict[str, dict[str, float]]:
    """Rule name -> query_key value -> earliest event time it fired (from the command alerter's files)."""
    out: dict[str, dict[str, float]] = {}
    for name in RULES:
        fired: dict[str, float] = out.setdefault(name, {})
        path = run_dir / f"matches-{name}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            for m in json.loads(line) if line.strip() else []:
                key = m.get(query_key)
                at = _ts(m["qf_fired_at"] if "qf_fired_at" in m else m["@timestamp"])
                if key:
                    fired[key] = min(at, fired.get(key, math.inf))
    return out


# -- comparison --------------------------------------------------------------------------------------------------


def _q(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]


def _dur(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds / 60:.1f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"


def compare(grader_first: dict[str, float], ea_first: dict[str, float], starts: dict[str, float]) -> dict[str, Any]:
    """Per ground-truth event first-alert times of both -> counts, time-to-alert quantiles, who was first."""
    both = sorted(set(grader_first) & set(ea_first))
    g_tta = [grader_first[e] - starts[e] for e in both]
    e_tta = [ea_first[e] - starts[e] for e in both]
    return {
        "grader_alerted": len(grader_first),
        "ea_alerted": len(ea_first),
        "both": len(both),
        "grader_only": len(set(grader_first) - set(ea_first)),
        "ea_only": len(set(ea_first) - set(grader_first)),
        "grader_first": sum(1 for e in both if grader_first[e] < ea_first[e]),
        "ea_first": sum(1 for e in both if ea_first[e] < grader_first[e]),
        "same_time": sum(1 for e in both if ea_first[e] == grader_first[e]),
        "grader_median_s": _q(g_tta, 0.5),
        "grader_p90_s": _q(g_tta, 0.9),
        "ea_median_s": _q(e_tta, 0.5),
        "ea_p90_s": _q(e_tta, 0.9),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir() / "weibo_posts.jsonl")
    ap.add_argument("--events", type=Path, default=None, help="ground truth (default: weibo_events.jsonl beside it)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N posts")
    ap.add_argument("--counts", choices=("zeroed", "given"), default="zeroed")
    ap.add_argument("--query-key", choices=("root_id", "grader_event"), default="root_id")
    ap.add_argument("--es", default=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"))
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds ElastAlert2 may take")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT")
    ap.add_argument("--keep", action="store_true", help="keep the indices and the run directory")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"no data file {args.data}", file=sys.stderr)
        return 2
    events_path = args.events or args.data.parent / "weibo_events.jsonl"

    version = ensure_venv()
    es = Elasticsearch(args.es, request_timeout=60)
    try:
        es_version = es.nodes.info(node_id="_local")["nodes"].popitem()[1]["version"]
    except Exception as err:  # any failure here means: no stack
        print(f"Elasticsearch not reachable at {args.es} ({err}); run `.venv/bin/qingfeng stack up`", file=sys.stderr)
        return 2

    # The grader side.
    t0 = time.perf_counter()
    rows = read_rows(args.data, args.limit)
    truth_post = {r["id"]: r["event_id"] for r in rows}
    starts = {
        e["event_id"]: _ts(e["source_created_at"])
        for e in read_rows(events_path)
        if e["event_id"] in set(truth_post.values())
    }
    collected = collect(rows)
    variant = Variant(parents=True, counts=args.counts == "given")
    posts = list(variant_posts(collected.posts, variant))
    convert, _ = converter()
    result = replay(to_views(posts, convert), load_policy_file(DEFAULT_POLICY), grader_config(True))
    native_of = {p.id: p.native_id for p in posts}
    post_of_native = {native: pid for pid, native in native_of.items()}
    predicted = {native_of[pid]: eid for pid, eid in result.assigned.items()}
    majority_of, _ = majority(truth_post, predicted)
    print(f"[grader] {len(posts)} posts replayed ({variant.name}) in {time.perf_counter() - t0:.1f} s", flush=True)

    # The same posts into a fresh index.
    run = f"qfea-{uuid.uuid4().hex[:8]}"
    index, writeback = f"{run}-posts", f"{run}-ea"
    root = roots(posts)
    docs = [
        {
            "@timestamp": p.created_at.ToDatetime(UTC).isoformat(),
            "post_id": p.id,
            "root_id": root[p.id],
            "grader_event": result.assigned.get(p.id, ""),
            "author": p.author.id,
        }
        for p in posts
    ]
    run_dir = Path(os.environ.get("TMPDIR", "/tmp")) / run
    shim = _Shim(args.es)
    threading.Thread(target=shim.serve_forever, daemon=True).start()
    finished = False
    try:
        took = index_posts(es, index, docs)
        print(f"[es] indexed {len(docs)} posts into {index} in {took:.1f} s (Elasticsearch {es_version})", flush=True)
        first_ts = min(_ts(d["@timestamp"]) for d in docs)
        last_ts = max(_ts(d["@timestamp"]) for d in docs)
        start = datetime.fromtimestamp(first_ts, UTC) - timedelta(hours=1)
        end = datetime.fromtimestamp(last_ts, UTC) + timedelta(days=1)
        print(
            f"[elastalert] {version}: backfill {start:%Y-%m-%d} .. {end:%Y-%m-%d}, shim 127.0.0.1:{shim.server_port}, "
            f"query_key {args.query_key}, log {run_dir / 'elastalert.log'}",
            flush=True,
        )
        ea_s = run_elastalert(run_dir, shim.server_port, index, writeback, args.query_key, start, end, args.timeout)
        matches = read_matches(run_dir, args.query_key)
        print(
            f"[elastalert] finished in {ea_s:.1f} s; {shim.requests} requests through the shim; matches per rule: "
            + ", ".join(f"{k} {len(v)}" for k, v in matches.items()),
            flush=True,
        )
        finished = True
    finally:
        shim.shutdown()
        if not args.keep:
            names = list(es.indices.get(index=f"{run}*").body)
            for name in names:
                es.indices.delete(index=name)
            if finished:  # a failed run keeps its config, rules and log for a look
                shutil.rmtree(run_dir, ignore_errors=True)
        es.close()

    # Ground-truth event -> first alert time of each side (at or after the event's first post).
    def ea_by_event(rule: str) -> dict[str, float]:
        fired = matches[rule]
        out: dict[str, float] = {}
        for e, start_ts in starts.items():
            # root_id: the event's source post (its native id is the event id); else its majority grader event.
            key = post_of_native.get(e, "") if args.query_key == "root_id" else majority_of.get(e, "")
            t = fired.get(key)
            if t is not None and t >= start_ts:
                out[e] = t
        return out

    def grader_by_event(level: str) -> dict[str, float]:
        times = first_alerts(result, level)
        out: dict[str, float] = {}
        for e, start_ts in starts.items():
            t = next((x for x in times.get(majority_of.get(e, ""), []) if x >= start_ts), None)
            if t is not None:
                out[e] = t
        return out

    print()
    print(
        f"{len(starts)} ground-truth events; time to alert in event time from each event's first post; "
        f"median/p90 over the events both alerted"
    )
    head = (
        f"{'grader level vs ElastAlert2 rule':40} {'grader':>6} {'EA':>5} {'both':>5} {'g med':>7} {'g p90':>7} "
        f"{'EA med':>7} {'EA p90':>7} {'g first':>7} {'EA first':>8} {'same':>5}"
    )
    print(head)
    print("-" * len(head))
    table = []
    for rule, (_, level) in RULES.items():
        c = compare(grader_by_event(level), ea_by_event(rule), starts)
        table.append({"grader_level": level, "rule": rule, **c})
        print(
            f"{'>= ' + level + ' vs ' + rule:40} {c['grader_alerted']:6d} {c['ea_alerted']:5d} {c['both']:5d} "
            f"{_dur(c['grader_median_s']):>7} {_dur(c['grader_p90_s']):>7} {_dur(c['ea_median_s']):>7} "
            f"{_dur(c['ea_p90_s']):>7} {c['grader_first']:7d} {c['ea_first']:8d} {c['same_time']:5d}"
        )
    if args.json:
        out = {
            "elastalert2": version,
            "elasticsearch": es_version,
            "posts": len(posts),
            "events": len(starts),
            "variant": variant.name,
            "query_key": args.query_key,
            "rows": table,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
