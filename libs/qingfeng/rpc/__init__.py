"""gRPC plumbing every process shares: the aio server with health, reflection and tracing, and its lifecycle."""

from qingfeng.rpc.lifecycle import ReadinessCheck, run_until_stopped
from qingfeng.rpc.server import GrpcServer, build_server

__all__ = ["GrpcServer", "ReadinessCheck", "build_server", "run_until_stopped"]
