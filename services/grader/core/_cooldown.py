"""The cool-down state machine: escalate at once, de-escalate only after the policy said "lower" for a while.

Levels are canonical ranks (model.LEVEL_RANK). The engine steps an event's state after every evaluation of the
policy (grading.rank_live) and schedules a re-grade at the end of a running cool-down.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import LEVELS

__all__ = ["LevelState", "settled", "step"]


@dataclass(frozen=True, slots=True)
class LevelState:
    """The policy-driven level of an event and its pending de-escalation.

    `below_since` is when the policy first said "lower" without interruption; `pending` is the highest
    lower level seen since, which the event drops to once the cool-down has passed.
    """

    rank: int = 0
    below_since: float | None = None
    pending: int = 0

    @property
    def level(self) -> str:
        return LEVELS[self.rank]


def settled(rank: int) -> LevelState:
    """LevelState(rank) with no pending drop: one shared instance per rank (it is frozen), since every event holds
    one and most never leave it (fewer objects for the garbage collector to walk)."""
    state = _SETTLED.get(rank)
    if state is None:
        state = _SETTLED[rank] = LevelState(rank)
    return state


_SETTLED: dict[int, LevelState] = {}


def step(state: LevelState, raw: int, now: float, cooldown: float) -> LevelState:
    """Escalate at once; de-escalate only after `cooldown` seconds of the policy saying lower."""
    if raw >= state.rank:
        if raw == state.rank and state.below_since is None:
            return state
        return settled(raw)
    if state.below_since is None:
        return settled(raw) if cooldown <= 0 else LevelState(state.rank, now, raw)
    pending = max(state.pending, raw)
    if now < state.below_since + cooldown:  # the same sum the engine schedules the end of the cool-down at
        return state if pending == state.pending else LevelState(state.rank, state.below_since, pending)
    # Cool-down over: settle at the highest level that held meanwhile; keep cooling if lower still.
    return settled(pending) if raw == pending else LevelState(pending, now, raw)
