"""The two reports as frozen values: the rapid report (舆情快报, 第N期) and the joint meeting's periodic statistics.

A report states facts about online posts to leaders, so every factual sentence is a ``Claim`` that carries the ids
of the posts it rests on, and a ``Claim`` without a post cannot be built. The values check themselves on
construction and raise ``InvalidReport`` naming the field; renderers can then trust them. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from services.coordinator.reports.errors import InvalidReport


class WarningLevel(StrEnum):
    """The canonical four-level scale (DESIGN §3); routing keys on it whatever scheme is displayed."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


class LevelScheme(StrEnum):
    """How a level is named to readers: 蓝/黄/橙/红 or the three tiers 一般/较大/重大."""

    FOUR_COLOR = "four_color"
    THREE_TIER = "three_tier"


_FOUR_COLOR_LABELS = {
    WarningLevel.BLUE: "蓝色预警（一般）",
    WarningLevel.YELLOW: "黄色预警（较重）",
    WarningLevel.ORANGE: "橙色预警（严重）",
    WarningLevel.RED: "红色预警（特别严重）",
}
# As in protos/qingfeng/v1/common.proto: ORANGE and RED are both shown as 重大 under the three tiers.
_THREE_TIER_LABELS = {
    WarningLevel.BLUE: "一般",
    WarningLevel.YELLOW: "较大",
    WarningLevel.ORANGE: "重大",
    WarningLevel.RED: "重大",
}


def level_label(level: WarningLevel, scheme: LevelScheme) -> str:
    """The Chinese label of ``level`` under ``scheme``, e.g. ``橙色预警（严重）`` or ``较大``."""
    return (_FOUR_COLOR_LABELS if scheme is LevelScheme.FOUR_COLOR else _THREE_TIER_LABELS)[level]


class DispositionKind(StrEnum):
    """The dispositions of DESIGN §3, each with its playbook in the coordinator."""

    VERIFIED_TRUE = "verified_true"
    REASONABLE_SUGGESTION = "reasonable_suggestion"
    FALSE_INFORMATION = "false_information"
    NEEDS_INVESTIGATION = "needs_investigation"
    MISUNDERSTANDING = "misunderstanding"


DISPOSITION_LABELS = {
    DispositionKind.VERIFIED_TRUE: "反映属实，线索移交案件管理",
    DispositionKind.REASONABLE_SUGGESTION: "合理建议，督促责任单位整改",
    DispositionKind.FALSE_INFORMATION: "不实信息，及时发布事实、依法处置谣言",
    DispositionKind.NEEDS_INVESTIGATION: "需调查核实，定期发布进展",
    DispositionKind.MISUNDERSTANDING: "误解误读，网上答复解释",
}


def _text(value: str, field: str) -> None:
    if not value.strip():
        raise InvalidReport(f"{field}: must not be empty")


def _aware(value: datetime, field: str) -> None:
    # Reports are read in Beijing time; a naive datetime would be shown at an unknown offset.
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidReport(f"{field}: datetime must carry a time zone, got naive {value.isoformat()}")


def _non_negative(value: int, field: str) -> None:
    if value < 0:
        raise InvalidReport(f"{field}: must be >= 0, got {value}")


@dataclass(frozen=True, slots=True)
class Claim:
    """One factual statement and the ids of the posts it rests on (at least one, no repeats)."""

    text: str
    post_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        _text(self.text, "claim.text")
        if not isinstance(self.post_ids, tuple):
            raise InvalidReport(f"claim.post_ids: must be a tuple, got {type(self.post_ids).__name__}")
        if not self.post_ids:
            raise InvalidReport(f"claim.post_ids: the claim {self.text!r} cites no post; every claim needs one")
        for post_id in self.post_ids:
            if not isinstance(post_id, str) or not post_id.strip():
                raise InvalidReport(f"claim.post_ids: empty or non-string post id in claim {self.text!r}")
        if len(set(self.post_ids)) != len(self.post_ids):
            raise InvalidReport(f"claim.post_ids: repeated post id in claim {self.text!r}")


@dataclass(frozen=True, slots=True)
class LevelAssessment:
    """The level of the event and the reasons for it, each a claim."""

    level: WarningLevel
    reasons: tuple[Claim, ...]
    scheme: LevelScheme = LevelScheme.FOUR_COLOR

    def __post_init__(self) -> None:
        if not self.reasons:
            raise InvalidReport("level.reasons: a level is never given without its reasons")

    @property
    def label(self) -> str:
        return level_label(self.level, self.scheme)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """What happened when, with the posts that show it."""

    at: datetime
    claim: Claim

    def __post_init__(self) -> None:
        _aware(self.at, "timeline.at")


@dataclass(frozen=True, slots=True)
class KeyPost:
    """A post the report quotes: who wrote it, what it says, how far it reached (reposts + comments + likes)."""

    post_id: str
    author: str
    text: str
    reach: int
    platform: str = ""
    published_at: datetime | None = None

    def __post_init__(self) -> None:
        _text(self.post_id, "key_post.post_id")
        _text(self.author, f"key_post[{self.post_id}].author")
        _non_negative(self.reach, f"key_post[{self.post_id}].reach")
        if self.published_at is not None:
            _aware(self.published_at, f"key_post[{self.post_id}].published_at")


@dataclass(frozen=True, slots=True)
class Disposition:
    """The decided (or pending) disposition and what has been done so far."""

    kind: DispositionKind | None
    actions: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "待研判" if self.kind is None else DISPOSITION_LABELS[self.kind]


@dataclass(frozen=True, slots=True)
class RapidReport:
    """舆情快报, 第 ``issue_number`` 期: one case, for leadership."""

    issue_number: int
    issued_on: date
    case_id: str
    title: str
    summary: tuple[Claim, ...]
    level: LevelAssessment
    timeline: tuple[TimelineEntry, ...]
    key_posts: tuple[KeyPost, ...]
    disposition: Disposition
    next_steps: tuple[str, ...]
    issuer: str = "舆情信息办公室"
    restricted: bool = True

    def __post_init__(self) -> None:
        if self.issue_number < 1:
            raise InvalidReport(f"issue_number: must be >= 1, got {self.issue_number}")
        _text(self.case_id, "case_id")
        _text(self.title, "title")
        _text(self.issuer, "issuer")
        if not self.summary:
            raise InvalidReport("summary: needs at least one claim")
        seen: set[str] = set()
        for post in self.key_posts:
            if post.post_id in seen:
                raise InvalidReport(f"key_posts: post {post.post_id} listed twice")
            seen.add(post.post_id)
        for step in self.next_steps:
            _text(step, "next_steps[]")
        for action in self.disposition.actions:
            _text(action, "disposition.actions[]")

    def claims(self) -> tuple[Claim, ...]:
        """Every claim of the report, in reading order."""
        return (*self.summary, *self.level.reasons, *(entry.claim for entry in self.timeline))

    def cited_post_ids(self) -> tuple[str, ...]:
        """The ids of all posts cited by a claim, first citation first, each once."""
        return _unique(post_id for claim in self.claims() for post_id in claim.post_ids)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- periodic statistics for the joint meeting (联席会议) ---------------------------------------------------------


class ResponseClock(StrEnum):
    """The response clocks of the source documents."""

    GOLDEN_PERIOD = "golden_period"  # first authoritative response within 2 h of the first alert
    REFUTATION = "refutation"  # a false rumour refuted within 24 h of the rumour alert


CLOCK_LABELS = {
    ResponseClock.GOLDEN_PERIOD: "黄金期首次回应",
    ResponseClock.REFUTATION: "谣言澄清辟谣",
}


@dataclass(frozen=True, slots=True)
class LevelCount:
    """Cases of one level in the period: opened, closed, and still open at the period's end."""

    level: WarningLevel
    opened: int
    closed: int
    open_at_end: int

    def __post_init__(self) -> None:
        for name in ("opened", "closed", "open_at_end"):
            _non_negative(getattr(self, name), f"cases_by_level[{self.level}].{name}")


@dataclass(frozen=True, slots=True)
class ClockStatistics:
    """How cases fared against one response clock. ``pending`` cases have no response yet and are not late yet."""

    clock: ResponseClock
    limit: timedelta
    met: int
    missed: int
    pending: int
    median: timedelta | None = None
    worst: timedelta | None = None

    def __post_init__(self) -> None:
        for name in ("met", "missed", "pending"):
            _non_negative(getattr(self, name), f"clocks[{self.clock}].{name}")
        if self.limit <= timedelta(0):
            raise InvalidReport(f"clocks[{self.clock}].limit: must be positive")

    @property
    def measured(self) -> int:
        return self.met + self.missed

    @property
    def on_time_ratio(self) -> float | None:
        """Share of measured cases answered within the limit; None when nothing was measured."""
        return None if self.measured == 0 else self.met / self.measured


@dataclass(frozen=True, slots=True)
class OverdueTask:
    """A task past its deadline and where its supervision (督办) stands."""

    task_id: str
    case_id: str
    agency: str
    title: str
    due_at: datetime
    supervision: str = ""  # e.g. "已提醒", "已升级至召集人"

    def __post_init__(self) -> None:
        _text(self.task_id, "overdue_tasks[].task_id")
        _text(self.title, f"overdue_tasks[{self.task_id}].title")
        _aware(self.due_at, f"overdue_tasks[{self.task_id}].due_at")


@dataclass(frozen=True, slots=True)
class ReportedItem:
    """A case reported upward (报送) to a leader role, and whether it was acknowledged."""

    case_id: str
    title: str
    level: WarningLevel
    reported_to: str
    reported_at: datetime
    acknowledged_at: datetime | None = None

    def __post_init__(self) -> None:
        _text(self.case_id, "reported_items[].case_id")
        _text(self.reported_to, f"reported_items[{self.case_id}].reported_to")
        _aware(self.reported_at, f"reported_items[{self.case_id}].reported_at")
        if self.acknowledged_at is not None:
            _aware(self.acknowledged_at, f"reported_items[{self.case_id}].acknowledged_at")


@dataclass(frozen=True, slots=True)
class InstructionRecord:
    """A leader's instruction (批示) on a case and how many tasks it became."""

    case_id: str
    leader: str
    given_at: datetime
    text: str
    tasks_created: int = 0

    def __post_init__(self) -> None:
        _text(self.leader, f"instructions[{self.case_id}].leader")
        _text(self.text, f"instructions[{self.case_id}].text")
        _aware(self.given_at, f"instructions[{self.case_id}].given_at")
        _non_negative(self.tasks_created, f"instructions[{self.case_id}].tasks_created")


@dataclass(frozen=True, slots=True)
class StatisticsReport:
    """The periodic statistics laid before the joint meeting for ``period_start`` .. ``period_end`` (inclusive)."""

    title: str
    period_start: date
    period_end: date
    generated_at: datetime
    cases_by_level: tuple[LevelCount, ...]
    clocks: tuple[ClockStatistics, ...]
    overdue_tasks: tuple[OverdueTask, ...]
    reported_items: tuple[ReportedItem, ...]
    instructions: tuple[InstructionRecord, ...]
    scheme: LevelScheme = LevelScheme.FOUR_COLOR

    def __post_init__(self) -> None:
        _text(self.title, "title")
        _aware(self.generated_at, "generated_at")
        if self.period_end < self.period_start:
            raise InvalidReport(f"period_end: {self.period_end} is before period_start {self.period_start}")
        levels = [count.level for count in self.cases_by_level]
        if len(set(levels)) != len(levels):
            raise InvalidReport("cases_by_level: a level is counted twice")
        clocks = [stats.clock for stats in self.clocks]
        if len(set(clocks)) != len(clocks):
            raise InvalidReport("clocks: a clock is listed twice")

    @property
    def cases_opened(self) -> int:
        return sum(count.opened for count in self.cases_by_level)
