"""The grader's own terms: what it reads from a post, and what it emits about events.

Levels are the canonical warning scale of `qingfeng.v1.WarningLevel`, written as lower-case names
("none", "blue", "yellow", "orange", "red") and ranked by `LEVEL_RANK`, whatever scheme the policy
displays. The wiring converts these records to and from protobuf; the core never sees protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

__all__ = [
    "LEVELS",
    "LEVEL_RANK",
    "METRIC_LABELS",
    "Alert",
    "DryRunRow",
    "EventSnapshot",
    "Explanation",
    "Grade",
    "Output",
    "Override",
    "PostView",
    "Reason",
    "WindowMetrics",
    "window_label",
]

# Canonical warning levels by severity; index = rank. "none" is tracked but below blue.
LEVELS: tuple[str, ...] = ("none", "blue", "yellow", "orange", "red")
LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(LEVELS)}

# Chinese names of the metrics, for the sentences that explain a grade to an official.
METRIC_LABELS: dict[str, str] = {
    "posts": "帖子数",
    "reposts": "转发量",
    "comments": "评论数",
    "likes": "点赞数",
    "distinct_authors": "参与作者数",
    "velocity": "传播速度(帖/小时)",
    "acceleration": "传播加速度(帖/小时²)",
    "top_author_reach": "意见领袖粉丝覆盖",
    "sources": "来源类型数",
    "platforms": "平台数",
    "media_involved": "媒体账号数",
    "regional_scope": "地域范围(1本地/2全省/3全国)",
    "offline_posts": "线下行动信号帖数",
    "offline_risk": "线下行动风险",
    "relevance": "涉腐相关度",  # source post's score or the mean over posts with evidence, whichever is larger
}


def window_label(window: str) -> str:
    """'1h' -> '1小时内', 'total' -> '累计', for reason sentences."""
    if window == "total":
        return "累计"
    units = {"s": "秒", "m": "分钟", "h": "小时", "d": "天"}
    return f"{window[:-1]}{units.get(window[-1], window[-1])}内"


@dataclass(frozen=True, slots=True)
class PostView:
    """The fields of a collected post that event detection and grading use.

    `keywords` and `simhash` come from the collector's enrichment (segmentation, SimHash of the
    simplified text); `created_at` must be timezone-aware: it is the event time that drives every
    window. Counts are the source's engagement numbers at collection time.
    """

    id: str
    created_at: datetime
    author_id: str = ""
    author_followers: int = 0
    author_is_media: bool = False
    source_kind: str = ""
    platform: str = ""
    text: str = ""
    keywords: tuple[str, ...] = ()
    simhash: int | None = None
    parent_id: str | None = None
    root_id: str | None = None
    reposts: int = 0
    comments: int = 0
    likes: int = 0
    region_codes: tuple[str, ...] = ()
    offline_signals: tuple[str, ...] = ()
    offline_planned: bool = False
    relevance: float = 0.0
    # The earlier post the collector found this one to duplicate (a text signal: the conversion also puts it
    # in parent_id/root_id when free; event detection treats that link as text evidence, not as a repost).
    duplicate_of: str | None = None


class WindowMetrics(NamedTuple):
    """An event's counters over one sliding window of event time ending at `window_end`.

    Names follow `qingfeng.v1.EventMetrics`. `velocity` is posts per hour in the window;
    `acceleration` is the change of velocity against the previous window of the same length,
    per hour. `top_author_reach` sums the followers of the policy's top-k authors (意见领袖).
    `regional_scope`: 0 unknown, 1 local, 2 provincial, 3 national. A NamedTuple rather than a
    frozen dataclass because several are built per post on the hot path, at a sixth of the cost.
    """

    window: str
    seconds: float
    window_end: datetime
    posts: int
    reposts: int
    comments: int
    likes: int
    distinct_authors: int
    velocity: float
    acceleration: float
    top_author_reach: int
    sources: int
    platforms: int
    media_involved: int
    regional_scope: int
    offline_posts: int
    offline_risk: float
    relevance: float


class Reason(NamedTuple):
    """One criterion behind a grade: what was measured, against what, and whether it fired.

    `criterion` is the metric name (or "override", "cooldown", "baseline", "below_lowest_level" for
    the non-metric reasons); `level` is the canonical level the criterion supports. `message` is a
    Chinese sentence. (A NamedTuple for the same reason as WindowMetrics.)
    """

    criterion: str
    value: float
    threshold: float
    op: str
    level: str = ""
    window: str = ""
    note: str = ""

    @property
    def message(self) -> str:
        """Human-readable sentence, e.g. "1小时内帖子数 120 ≥ 100"."""
        if self.note:
            return self.note
        label = METRIC_LABELS.get(self.criterion, self.criterion)
        op = {">=": "≥", "<=": "≤", "!=": "≠", "==": "="}.get(self.op, self.op)
        return f"{window_label(self.window)}{label} {_num(self.value)} {op} {_num(self.threshold)}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


@dataclass(frozen=True, slots=True)
class Override:
    """A level fixed by an analyst; it wins over the policy until cleared or `expires_at`."""

    level: str
    reason: str
    by: str
    at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Grade:
    """The result of the policy (or an override) on an event's metrics at `graded_at` (event time).

    `level` is canonical; `label` is the display name in the policy's scheme. `policy_level` is what
    the policy alone says now: it differs from `level` during a cool-down (`hold_until` is then set)
    or under an override.
    """

    level: str
    label: str
    scheme: str
    policy_version: str
    reasons: tuple[Reason, ...]
    graded_at: datetime
    policy_level: str
    rising: bool = False
    override: Override | None = None
    hold_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventSnapshot:
    """The current state of one event, emitted whenever it changes (compacted topic, keyed by id)."""

    event_id: str
    title: str
    keywords: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    post_count: int
    late_posts: int
    level: str
    previous_level: str
    rising: bool
    grade: Grade
    metrics: tuple[WindowMetrics, ...]
    region_codes: tuple[str, ...]
    representative_post_ids: tuple[str, ...]
    version: int
    merged_into: str | None = None

    def window(self, name: str) -> WindowMetrics | None:
        """The metrics of one window by name ("1h", "total" …)."""
        return next((m for m in self.metrics if m.window == name), None)


@dataclass(frozen=True, slots=True)
class Alert:
    """One level change of one event. `(event_id, sequence)` is unique: downstream dedupes on it."""

    event_id: str
    from_level: str
    to_level: str
    reasons: tuple[Reason, ...]
    at: datetime
    sequence: int
    event_title: str
    grade: Grade
    region_codes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Stable alert id "<event_id>:<sequence>"."""
        return f"{self.event_id}:{self.sequence}"


@dataclass(frozen=True, slots=True)
class DryRunRow:
    """How a candidate policy would move one event."""

    event_id: str
    title: str
    old_level: str
    new_level: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every criterion of the active policy on one event, fired or not, with the current grade."""

    grade: Grade
    evaluations: tuple[tuple[Reason, bool], ...]
    metrics: tuple[WindowMetrics, ...]
    policy_level: str


Output = EventSnapshot | Alert
