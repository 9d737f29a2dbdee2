"""The sample reports the tests render: an orange case with a post that contains markup, and a quarter's statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.coordinator.reports import (
    Claim,
    ClockStatistics,
    Disposition,
    DispositionKind,
    InstructionRecord,
    KeyPost,
    LevelAssessment,
    LevelCount,
    OverdueTask,
    RapidReport,
    ReportedItem,
    ResponseClock,
    StatisticsReport,
    TimelineEntry,
    WarningLevel,
)

UTC = UTC
TITLE = "网民举报某区住建局局长收受开发商贿赂"
SCRIPT_POST = '<script>alert("x")</script> 局长 & 开发商'


def at(hour: int, minute: int = 0) -> datetime:
    """A time on 2026-11-30 in UTC (Beijing is UTC+8, so 02:05 UTC shows as 10:05)."""
    return datetime(2026, 11, 30, hour, minute, tzinfo=UTC)


def sample_rapid_report() -> RapidReport:
    return RapidReport(
        issue_number=12,
        issued_on=date(2026, 11, 30),
        case_id="case-2026-0042",
        title=TITLE,
        summary=(
            Claim("11月30日上午，微博用户“清风徐来”发帖称某区住建局局长收受开发商贿赂。", ("wb-1001",)),
            Claim("相关帖文两小时内被转发五千余次，本地媒体开始关注。", ("wb-1001", "wb-1002", "news-7")),
        ),
        level=LevelAssessment(
            WarningLevel.ORANGE,
            reasons=(
                Claim("传播速度快、范围广：两小时转发5,321次", ("wb-1001", "wb-1002")),
                Claim("传统媒体开始报道", ("news-7",)),
            ),
        ),
        timeline=(
            TimelineEntry(at(3, 40), Claim("本地新闻网转载并评论", ("news-7",))),
            TimelineEntry(at(2, 5), Claim("首帖发布，实名举报", ("wb-1001",))),
        ),
        key_posts=(
            KeyPost(
                "wb-1001",
                author="清风徐来",
                text="实名举报某区住建局局长收受开发商贿赂。",
                reach=5321,
                platform="微博",
                published_at=at(2, 5),
            ),
            KeyPost("wb-1002", author="本地大V", text=SCRIPT_POST, reach=1890, platform="微博"),
            KeyPost("news-7", author="本地新闻网", text="住建局回应网传举报：已关注。", reach=640, platform="新闻网站"),
        ),
        disposition=Disposition(DispositionKind.NEEDS_INVESTIGATION, actions=("已转交核查组核实",)),
        next_steps=("24小时内发布调查进展", "请公安网安关注恶意炒作"),
    )


def sample_statistics_report() -> StatisticsReport:
    return StatisticsReport(
        title="网络涉腐舆情工作统计（2026年第四季度）",
        period_start=date(2026, 10, 1),
        period_end=date(2026, 12, 31),
        generated_at=at(8),
        cases_by_level=(
            LevelCount(WarningLevel.BLUE, opened=14, closed=12, open_at_end=2),
            LevelCount(WarningLevel.YELLOW, opened=5, closed=4, open_at_end=1),
            LevelCount(WarningLevel.ORANGE, opened=2, closed=1, open_at_end=1),
            LevelCount(WarningLevel.RED, opened=0, closed=0, open_at_end=0),
        ),
        clocks=(
            ClockStatistics(
                ResponseClock.GOLDEN_PERIOD,
                limit=timedelta(hours=2),
                met=6,
                missed=1,
                pending=1,
                median=timedelta(minutes=85),
                worst=timedelta(hours=3, minutes=10),
            ),
            ClockStatistics(ResponseClock.REFUTATION, limit=timedelta(hours=24), met=0, missed=0, pending=2),
        ),
        overdue_tasks=(
            OverdueTask(
                "task-9",
                case_id="case-2026-0042",
                agency="police_cyber",
                title="核查造谣账号",
                due_at=at(2),
                supervision="已提醒",
            ),
        ),
        reported_items=(
            ReportedItem(
                "case-2026-0042",
                title=TITLE,
                level=WarningLevel.ORANGE,
                reported_to="纪委副书记",
                reported_at=at(4),
                acknowledged_at=None,
            ),
            ReportedItem(
                "case-2026-0040",
                title="某镇低保发放问题",
                level=WarningLevel.YELLOW,
                reported_to="分管常委",
                reported_at=at(1),
                acknowledged_at=at(1, 30),
            ),
        ),
        instructions=(
            InstructionRecord(
                "case-2026-0042",
                leader="纪委书记",
                given_at=at(5),
                text="请迅速核实，依纪依法处理，及时回应社会关切。",
                tasks_created=2,
            ),
        ),
    )
