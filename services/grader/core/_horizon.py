"""How long a level's rule is sure to keep holding when no post arrives, so the engine can sleep till then.

Under a monotone policy every criterion is a lower bound on a metric that only shrinks as buckets leave
the window. Walking the window's buckets from the oldest, a criterion cannot fail before enough of them
have left to use up its slack (value - threshold); a rule cannot fail before enough of its criteria
can. The answer is a lower bound: waking then and finding the rule still holding is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from ._windows import OFFLINE_RISK_HALF, Bucket, Window
from .grading import _Check, _Rule

__all__ = ["hold_until"]

# How much one bucket leaving can take away from a metric.
_LOSS: dict[str, Callable[[Bucket], float]] = {
    "posts": lambda b: b.posts,
    "reposts": lambda b: b.reposts,
    "comments": lambda b: b.comments,
    "likes": lambda b: b.likes,
    "offline_posts": lambda b: b.offline_posts,
    "distinct_authors": lambda b: len(b.by_author),
    "media_involved": lambda b: len(b.by_media),
    "sources": lambda b: len(b.by_source),
    "platforms": lambda b: len(b.by_platform),
    "velocity": lambda b: b.posts,
    "offline_risk": lambda b: b.offline_posts + b.planned_posts,
}


def _slack(w: Window, metric: str, threshold: float) -> float:
    """How much of the metric's underlying count can go before the criterion may fail."""
    if metric == "velocity":
        return w.posts - threshold * w.hours
    if metric == "offline_risk":  # risk = x / (x + H) >= t  <=>  x >= tH / (1 - t)
        weighted = w.offline_posts + w.planned_posts
        return weighted - threshold * OFFLINE_RISK_HALF / (1 - threshold) if threshold < 1 else 0.0
    value: float = getattr(w, metric)
    return value - threshold


def _fails_at(check: _Check, windows: Mapping[str, Window], cap: int) -> float:
    metric, name, _, threshold = check[0], check[1], check[2], check[3]
    w = windows[name]
    if math.isinf(w.seconds) or not w.dq:
        return math.inf  # lifetime counts never shrink; an empty window cannot lose anything
    loss = _LOSS.get(metric)
    if loss is None:  # top_author_reach, regional_scope: only bounded by the next bucket leaving
        return w.dq[0].end + w.seconds
    slack = _slack(w, metric, threshold)
    removed = 0.0
    for i, bucket in enumerate(w.dq):
        removed += loss(bucket)
        if removed >= slack or i >= cap:
            return bucket.end + w.seconds
    return math.inf


def hold_until(rule: _Rule, windows: Mapping[str, Window], cap: int = 128) -> float:
    """Earliest event time at which `rule`, holding now, could stop holding with no new post."""
    until = math.inf
    for check in rule.require:
        until = min(until, _fails_at(check, windows, cap))
    if rule.needed:
        times = sorted(
            _fails_at(check, windows, cap)
            for check in rule.criteria
            if check[2](getattr(windows[check[1]], check[0]), check[3])
        )
        spare = len(times) - rule.needed  # criteria that may fail before the rule does
        if spare >= 0:
            until = min(until, times[spare])
    return until
