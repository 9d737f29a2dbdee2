"""The grader's pure core: event detection, windowed metrics and policy grading in event time.

Standard library only: no asyncio, gRPC, Kafka or Elasticsearch. The wiring (app, consumer, server)
converts protobuf to `PostView`, feeds `Grader.process`, and publishes the `EventSnapshot`s and
`Alert`s it returns.
"""

from ._cooldown import LevelState, step
from ._projection import projected_rank
from .clustering import Assignment, Clusterer, ClusteringConfig
from .engine import STATE_FORMAT, Grader, GraderConfig
from .grading import CompiledPolicy, compile_policy, evaluate, explain
from .metrics import Contribution, EventMetrics, regional_scope
from .model import (
    LEVEL_RANK,
    LEVELS,
    Alert,
    DryRunRow,
    EventSnapshot,
    Explanation,
    Grade,
    Output,
    Override,
    PostView,
    Reason,
    WindowMetrics,
)
from .policy import METRICS, Criterion, Level, Policy, PolicyInvalid, PolicyIssue, Rising, parse_duration, parse_policy

__all__ = [
    "LEVELS",
    "LEVEL_RANK",
    "METRICS",
    "STATE_FORMAT",
    "Alert",
    "Assignment",
    "Clusterer",
    "ClusteringConfig",
    "CompiledPolicy",
    "Contribution",
    "Criterion",
    "DryRunRow",
    "EventMetrics",
    "EventSnapshot",
    "Explanation",
    "Grade",
    "Grader",
    "GraderConfig",
    "Level",
    "LevelState",
    "Output",
    "Override",
    "Policy",
    "PolicyInvalid",
    "PolicyIssue",
    "PostView",
    "Reason",
    "Rising",
    "WindowMetrics",
    "compile_policy",
    "evaluate",
    "explain",
    "parse_duration",
    "parse_policy",
    "projected_rank",
    "regional_scope",
    "step",
]
