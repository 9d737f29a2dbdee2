"""An in-process coordinator gRPC server over a migrated database, with the credential interceptor of production,
seeded through the API with cases, tasks of several agencies, a meeting with decisions and an instruction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import GrpcSettings
from qingfeng.v1 import case_pb2, case_pb2_grpc

from services.coordinator.core.cases import AlertView
from services.coordinator.core.model import Decision, Disposition, Level, Rung
from services.coordinator.handling import Handling
from services.coordinator.reporting import Reporting
from services.coordinator.server import CoordinatorServicer
from services.coordinator.service import CoordinatorApi, Viewer
from tests.identity import TRUST, signed_channel

from ..conftest import T0, FakeClock

OFFICE = Viewer("office.duty", "opinion_office")
PARTNERS = (
    "propaganda",
    "police_cyber",
    "petitions",
    "daily_newspaper",
    "telecom_regulator",
    "case_management",
    "channel_operator",
    "analyst",
)


@dataclass
class Seeded:
    rumour_case: str = ""  # orange, false information: tasks for police_cyber and propaganda
    petition_case: str = ""  # yellow: one task for petitions
    quiet_case: str = ""  # blue: no task at all
    tasks_by_agency: dict[str, list[str]] = field(default_factory=dict)
    meeting: str = ""


@dataclass
class Running:
    port: int
    api: CoordinatorApi
    seeded: Seeded

    def stub(
        self, agency: str | None, principal: str = "someone"
    ) -> tuple[grpc.aio.Channel, case_pb2_grpc.CoordinatorServiceStub]:
        channel = signed_channel(f"127.0.0.1:{self.port}", principal=principal, agency=agency, roles=())
        return channel, case_pb2_grpc.CoordinatorServiceStub(channel)


async def seed(handling: Handling, api: CoordinatorApi, clock: FakeClock) -> Seeded:
    s = Seeded()
    rumour = AlertView("ev-r:1", "ev-r", 1, Level.NONE, Level.ORANGE, "网传某局长收礼", T0, (), (("relevance", 0.9),))
    s.rumour_case = str(await handling.on_alert(rumour, clock.now))
    await api.acknowledge(OFFICE, s.rumour_case, "收到")
    _, tasks = await api.set_disposition(OFFICE, s.rumour_case, Disposition.FALSE_INFORMATION, "经核查为谣言")
    petition = AlertView(
        "ev-p:1", "ev-p", 1, Level.NONE, Level.YELLOW, "群众反映拆迁补偿", T0, (), (("relevance", 0.7),)
    )
    s.petition_case = str(await handling.on_alert(petition, clock.now))
    task = await api.create_task(OFFICE, s.petition_case, "petitions", "对接信访诉求", T0 + timedelta(days=2), "")
    quiet = AlertView("ev-q:1", "ev-q", 1, Level.NONE, Level.BLUE, "某街道办作风问题", T0, (), (("relevance", 0.8),))
    s.quiet_case = str(await handling.on_alert(quiet, clock.now))
    for t in (*tasks, task):
        s.tasks_by_agency.setdefault(t.agency, []).append(t.id)
    meeting = await api.convene(OFFICE, "emergency", "", [s.rumour_case], None, [])
    done = await api.record_minutes(
        OFFICE,
        meeting.id,
        "会议纪要(内部)",
        [Decision("公安网安依法查处", "police_cyber"), Decision("日报社刊发辟谣", "daily_newspaper")],
        ["police_cyber"],
    )
    for d in done.decisions:
        s.tasks_by_agency.setdefault(d.owner, []).extend(d.task_ids)
    s.meeting = meeting.id
    instruction = await api.add_instruction(
        OFFICE, s.rumour_case, ("sec", "李书记", "纪委书记"), Rung.SECRETARY, "迅速核实", None, ["propaganda"], None
    )
    s.tasks_by_agency["propaganda"].extend(instruction.task_ids)
    return s


@asynccontextmanager
async def running(handling: Handling, clock: FakeClock) -> AsyncIterator[Running]:
    api = CoordinatorApi(handling, clock)
    seeded = await seed(handling, api, clock)
    servicer = CoordinatorServicer(api, Reporting(handling, clock), clock)
    server = build_server(
        GrpcSettings(port=0, plaintext=True),
        services=[
            (
                case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"],
                lambda srv: case_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, srv),
            )
        ],
        interceptors=[CredentialInterceptor(TRUST)],
    )
    await server.server.start()
    try:
        yield Running(server.port, api, seeded)
    finally:
        await server.server.stop(0)
