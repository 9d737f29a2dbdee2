"""Forked children survive a process whose gRPC is busy: ``qingfeng`` turns grpcio's fork handlers off before grpc is
imported (libs/qingfeng/__init__.py).

With the handlers on (grpcio's default), a probe on this machine saw 40 of 300 ``os.fork`` children and 142 of 300
children started as another user abort in ``ev_epoll1_linux.cc`` (``next_worker->state == KICKED``) while four
tasks called a loopback gRPC server; with them off, none of 300 each. Each check runs in a fresh interpreter, with
the variable removed from its environment (this process has it from importing ``qingfeng``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.libs.entry_points import SERVICE_MAINS

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = [*SERVICE_MAINS, "qingfeng.cli.main"]

# Prints the variable as it is when ``grpc`` starts being imported (nothing if the module never imports it).
_WATCH = """
import os, sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "grpc":
            print("AT_GRPC", os.environ.get("GRPC_ENABLE_FORK_SUPPORT"), flush=True)
            sys.meta_path.remove(self)
        return None
sys.meta_path.insert(0, Watch())
import importlib
importlib.import_module(sys.argv[1])
"""

_FORKS = """
import qingfeng  # first, as every entry point does
import asyncio, os, sys
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

async def main():
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    busy = True
    async def calls():
        while busy:
            await stub.Check(health_pb2.HealthCheckRequest())
    tasks = [asyncio.create_task(calls()) for _ in range(4)]
    await asyncio.sleep(0.2)

    def child():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    failed = 0
    for _ in range(int(sys.argv[1])):
        failed += await asyncio.to_thread(child) != 0
        await asyncio.sleep(0)
    busy = False
    await asyncio.gather(*tasks, return_exceptions=True)
    await channel.close()
    await server.stop(None)
    print("FAILED", failed, flush=True)

asyncio.run(main())
"""


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "libs")])
    return env


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_each_entry_point_turns_the_fork_handlers_off_before_grpc_is_imported(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WATCH, module],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("AT_GRPC")]
    # A module that imports grpc only later imports it after qingfeng too; one that imports it now must find it off.
    assert seen in ([], ["false"]), f"{module}: GRPC_ENABLE_FORK_SUPPORT was {seen} when grpc was imported"


def test_forked_children_survive_while_grpc_calls_are_in_flight() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FORKS, "300"], cwd=ROOT, env=_environment(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    failed = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert failed == [0], f"forked children that aborted: {failed}; {done.stderr[-1000:]}"
