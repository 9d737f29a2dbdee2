"""Rapid reports and statistics over gRPC: office only, numbered once per case, HTML and a real PDF."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from qingfeng.v1 import case_pb2

from services.coordinator.handling import Handling

from ..conftest import FakeClock
from .harness import Running, running


@pytest.fixture
async def live(handling: Handling, clock: FakeClock) -> AsyncIterator[Running]:
    await handling.on_event_snapshot("ev-r", ["post-101", "post-102"], clock.now)
    await handling.on_event_snapshot("ev-p", ["post-201"], clock.now)
    async with running(handling, clock) as r:
        yield r


async def test_rapid_report_and_statistics(live: Running) -> None:
    s = live.seeded
    channel, office = live.stub("opinion_office", principal="office.li")
    async with channel:
        first = await office.GetRapidReport(case_pb2.GetRapidReportRequest(case_id=s.rumour_case))
        again = await office.GetRapidReport(case_pb2.GetRapidReportRequest(case_id=s.rumour_case))
        other = await office.GetRapidReport(case_pb2.GetRapidReportRequest(case_id=s.petition_case))
        assert (first.issue_number, again.issue_number, other.issue_number) == (1, 1, 2)
        html = first.report.content.decode("utf-8")
        assert first.report.content_type.startswith("text/html")
        assert "网传某局长收礼" in html and "post-101" in html and "第1期" in html
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await office.GetRapidReport(case_pb2.GetRapidReportRequest(case_id=s.quiet_case))  # no posts named yet
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        pdf = await office.GetRapidReport(
            case_pb2.GetRapidReportRequest(case_id=s.rumour_case, format=case_pb2.REPORT_FORMAT_PDF)
        )
        assert pdf.report.content_type == "application/pdf" and pdf.report.content.startswith(b"%PDF")
        stats = await office.GetStatistics(case_pb2.GetStatisticsRequest())
        text = stats.report.content.decode("utf-8")
        assert "联席会议" in text and "迅速核实" in text  # the instruction is listed
        audit = await office.ListAuditRecords(case_pb2.ListAuditRecordsRequest(page_size=1000))
        assert {"report.rapid", "report.statistics"} <= {r.action for r in audit.records}
    channel, partner = live.stub("police_cyber")
    async with channel:
        for call in (
            partner.GetRapidReport(case_pb2.GetRapidReportRequest(case_id=s.rumour_case)),
            partner.GetStatistics(case_pb2.GetStatisticsRequest()),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
