"""Qingfeng's shared kernel: what every process needs and nothing a single service owns."""

import os

__version__ = "0.1.0"

# grpcio registers fork handlers by default, and a child forked while gRPC's threads are busy can abort in them before
# it does anything (ev_epoll1_linux.cc "Check failed: next_worker->state == KICKED"): the grader's checkpoint child
# (os.fork), or a process started as another user (the stack's Elasticsearch: fork, not vfork). No Qingfeng child uses
# gRPC, so the handlers only cost. grpc reads the variable when it is imported, and every entry point imports
# ``qingfeng`` first (tests/libs/test_grpc_fork.py); an operator's own setting wins.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
