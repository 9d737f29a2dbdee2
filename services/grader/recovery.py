"""What the engine's owner (``state.EngineOwner``) starts from: the policy to grade with, and the last checkpoint.

``settle_policy`` decides which policy is active at start; ``restore_last`` reads back everything a recovery
rebuilds from (the checkpoint's engine and positions, the alerts already on the topic, the order logged since),
timing each step: how long a restart holds alerts is read from the owner's "recovered" log (bench_grader_restart).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.grader.active_policy import ActivePolicy, policy_record
from services.grader.adapters.policy_yaml import load_policy
from services.grader.checkpointing import OrderLog
from services.grader.core import Grader, GraderConfig, Policy
from services.grader.ports import AlertLog, AuditEntry, Checkpoint, Outputs, StateStore
from services.grader.state_codec import decode_state

__all__ = ["Restored", "log_recovered", "restore_last", "restore_to_follow", "settle_policy"]

# The owner's logger, as before these steps had a module of their own: the restart benchmark reads its records.
_log = logging.getLogger("services.grader.state")

_RECOVERY_STEPS = ("load_s", "decode_s", "restore_s", "alert_log_s", "order_log_s", "pending_s")


def _lap(steps: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    steps[name] = round(now - since, 3)
    return now


async def settle_policy(store: StateStore, text: str, source: str, clock: Callable[[], datetime]) -> ActivePolicy:
    """The active policy at start: the configured file when its version is new (activated and stored with its
    audit record), else the stored one.

    Raises ``PolicyLoadError`` when the file is invalid (the process must not start on a broken policy).
    """
    configured = load_policy(text, source)
    active = await store.active_policy()
    if active is None or await store.policy(configured.version) is None:
        record = policy_record(text, configured, activated_at=clock(), activated_by=f"config:{source}")
        audit = AuditEntry(
            actor=record.activated_by,
            action="policy.activate",
            target=record.version,
            details={"sha256": record.sha256, "previous": active.version if active else None, "source": source},
        )
        await store.save(None, policy=record, audit=[audit])
        _log.info("activated configured policy %s", record.version, extra={"source": source})
        return ActivePolicy(record, configured)
    if active.version != configured.version:
        _log.info("policy %s stays active (activated by %s); %s is older", active.version, active.activated_by,
                  configured.version)  # fmt: skip
    return ActivePolicy.of(active)


@dataclass
class Restored:
    """What a recovery rebuilds from; ``steps`` holds each read's wall time, ``mark`` when the last one ended."""

    checkpoint: Checkpoint | None
    engine: Grader
    positions: dict[int, int]
    alert_offsets: dict[int, int]
    pending: Outputs
    emitted: set[str]
    script: list[tuple[int, int, int]]
    steps: dict[str, float]
    mark: float


async def restore_last(
    store: StateStore, alert_log: AlertLog, order_log: OrderLog | None, policy: Policy, config: GraderConfig
) -> Restored:
    """The last checkpoint restored under ``policy`` (a fresh engine when there is none), the alert ids already on
    the topic since its bound, and the order logged since it."""
    steps: dict[str, float] = {}
    mark = time.perf_counter()
    checkpoint = await store.load()
    mark = _lap(steps, "load_s", mark)
    if checkpoint is None:
        engine = Grader(policy, config)
        positions: dict[int, int] = {}
        alert_offsets: dict[int, int] = {}
        pending = Outputs()
    else:
        data = decode_state(checkpoint.state)
        mark = _lap(steps, "decode_s", mark)
        engine = Grader.restore(data, policy, config)
        del data
        mark = _lap(steps, "restore_s", mark)
        positions, alert_offsets = dict(checkpoint.positions), dict(checkpoint.alert_offsets)
        pending = checkpoint.pending
    emitted = await alert_log.emitted(alert_offsets)
    mark = _lap(steps, "alert_log_s", mark)
    script = await order_log.order_log() if order_log is not None else []
    mark = _lap(steps, "order_log_s", mark)
    return Restored(checkpoint, engine, positions, alert_offsets, pending, emitted, script, steps, mark)


def log_recovered(restored: Restored) -> None:
    """Log each step's wall time, ``pending_s`` (publishing what the checkpoint left pending) ending now."""
    steps, checkpoint = restored.steps, restored.checkpoint
    _lap(steps, "pending_s", restored.mark)
    _log.info(
        "recovered: load %.2fs, decode %.2fs, restore %.2fs, alert log %.2fs, order log %.2fs, pending %.2fs",
        *(steps.get(k, 0.0) for k in _RECOVERY_STEPS),
        extra={
            **steps,
            "state_bytes": len(checkpoint.state) if checkpoint else 0,
            "checkpoint_at": checkpoint.saved_at.isoformat() if checkpoint else None,
            "events": len(restored.engine.events),
            "positions": restored.positions,
            "alerts_already_emitted": len(restored.emitted),
            "order_log_runs": len(restored.script),
        },
    )


def restore_to_follow(checkpoint: Checkpoint, policy: Policy, config: GraderConfig) -> Grader:
    """The checkpoint's engine to follow the leader from (standby.py): regraded under ``policy`` when it was graded
    under another, as the leader's recovery does (its next checkpoint will say so)."""
    engine = Grader.restore(decode_state(checkpoint.state), policy, config)
    if engine.state_policy_version != policy.version:
        engine.set_policy(policy)
    return engine
