"""`qingfeng demo`: bring the stack and the suite up, replay a slice of ../shared/data, and say where to look.

The replay goes through the public door like a partner would: the gateway's ImportPosts with the analyst's token,
then the collector (enrichment, dedupe, Kafka, Elasticsearch) and the grader (events, levels, alerts). At the end
the demo asks the gateway what happened — events by level, the cases the coordinator opened and whom they were routed
to — and prints the console URL and the token to paste into it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from qingfeng.cli import demo_summary, import_posts, stack, suite, tokens
from qingfeng.cli._console import CliError, say
from qingfeng.cli.paths import repo_root, state_dir
from qingfeng.cli.pki import ca_file
from qingfeng.rpc.tls import sync_channel
from qingfeng.settings import ClientTlsSettings

__all__ = ["add_arguments", "run"]

GATEWAY = "127.0.0.1:50051"
# Every process of the suite at its default port: the replay starts once all of them serve.
SUITE_ADDRESSES = {
    "gateway": GATEWAY,
    "collector": "127.0.0.1:50061",
    "grader": "127.0.0.1:50062",
    "coordinator": "127.0.0.1:50063",
    "publisher": "127.0.0.1:50064",
}
CONSOLE = "https://127.0.0.1:8080/"
DEMO_IDENTITY = "analyst"


def _default_data() -> Path:
    return Path(os.environ.get("QF_SHARED_DATA", repo_root().parent / "shared" / "data"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help="folder of weibo_posts.jsonl (default ../shared/data)")
    parser.add_argument("--limit", type=int, default=5000, help="posts to replay (default 5000; 0 = all)")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for the suite to serve")


def _wait_serving(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for name, address in SUITE_ADDRESSES.items():
        with sync_channel(address, ClientTlsSettings(ca_file=ca_file(state_dir()))) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise CliError(f"{name} at {address} did not report SERVING within {timeout_s:.0f} s; see logs")
                time.sleep(0.5)
    say("demo", "all five processes report SERVING")


def _replay(data: Path, limit: int, token_file: Path) -> None:
    posts = data / "weibo_posts.jsonl"
    if not posts.is_file():
        say("demo", f"no replay: {posts} not found (set --data or QF_SHARED_DATA); the suite is up and empty")
        return
    parser = argparse.ArgumentParser()
    import_posts.add_arguments(parser)
    argv = [str(posts), "--gateway", GATEWAY, "--token-file", str(token_file)]
    if limit > 0:
        argv += ["--limit", str(limit)]
    say("demo", f"replaying {'all' if limit <= 0 else limit} posts of {posts} through the gateway")
    code = import_posts.run(parser.parse_args(argv))
    if code != 0:
        raise CliError("the replay failed; see the message above and .qingfeng/logs/", exit_code=code)


def _summarise(token_file: Path, state: Path, wait_s: float) -> None:
    """Events by level and the cases the coordinator opened and routed, asked of the gateway as the analyst."""
    say("demo", "waiting for the coordinator to open and route the cases")
    metadata = [("authorization", f"Bearer {token_file.read_text(encoding='utf-8').strip()}")]
    try:
        with sync_channel(GATEWAY, ClientTlsSettings(ca_file=ca_file(state))) as channel:
            summary = demo_summary.collect(channel, metadata, wait_s=wait_s)
    except grpc.RpcError as err:
        say("demo", f"no summary: the gateway answered {err.code().name}: {err.details()}")
        return
    demo_summary.print_summary(summary, sys.stdout)


def run(args: argparse.Namespace) -> int:
    say("demo", "starting Kafka and Elasticsearch (reused when already running)")
    if stack.stack_up() != 0:
        return 1
    say("demo", "starting the suite (collector, grader, coordinator, publisher, gateway)")
    if suite.suite_up() != 0:
        return 1
    state = state_dir()
    tokens.provision(state)
    token_file = state / "tokens" / DEMO_IDENTITY
    _wait_serving(args.wait)
    _replay(args.data or _default_data(), args.limit, token_file)
    _summarise(token_file, state, args.wait)
    print(
        "\nWhere to look:\n"
        f"  console         {CONSOLE}  (paste the token from {token_file}; TLS by the local CA {ca_file(state)})\n"
        f"  gRPC gateway    {GATEWAY}  (metadata 'authorization: Bearer <token>'; reflection is on)\n"
        f"  partner tokens  {state / 'tokens'}/\n"
        f"  logs            {state / 'logs'}/  (JSON lines with trace ids)\n"
        "  status          .venv/bin/qingfeng status ; .venv/bin/qingfeng stack status\n"
        "  stop            .venv/bin/qingfeng down ; .venv/bin/qingfeng stack down\n"
    )
    return 0
