"""The console in headless Chromium against the running suite: sign in, the dashboard, search with highlighted
hits, an event's chart (a non-empty canvas) and reasons, a role without the grant refused by the gateway, the case
board's acknowledgement, and the publications part saying the publisher is not there. Screenshots of the dashboard,
an event page, search and the case board go to ``QF_SCREENSHOTS`` (docs/screenshots refreshes the committed ones)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from qingfeng.cli.pki import ca_file
from qingfeng.v1 import common_pb2, publication_pb2, publication_pb2_grpc

from tests.browser.conftest import DIRECTOR_ROLE, ConsoleSuite, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: a temporary folder, or ``QF_SCREENSHOTS`` (``docs/screenshots`` to refresh the committed
    ones), so an ordinary run leaves the work tree clean."""
    chosen = os.environ.get("QF_SCREENSHOTS")
    return Path(chosen).resolve() if chosen else tmp_path_factory.mktemp("screenshots")


# In the first posts of the shared data (临沂市委书记…): a two-character word.
TERM = "书记"
VIEWPORT = {"width": 1440, "height": 900}

# Any pixel drawn on the canvas (ECharts paints on a transparent canvas).
_CANVAS_DRAWN = """(canvas) => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) drawn++;
  return drawn;
}"""


def _signed_in(browser: Any, suite: ConsoleSuite, who: str) -> Any:
    # The suite's HTTPS certificate is from a throwaway local CA: accepted for this test context only.
    context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(suite.url + "/")
    page.fill("#token", suite.tokens[who])
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
    page.errors = errors
    return page


def _api(page: Any, path: str) -> Any:
    return page.evaluate(
        "async (path) => { const r = await fetch(path); return {status: r.status, body: await r.json()}; }", path
    )


@pytest.fixture(scope="module")
def office(browser: Any, console_suite: ConsoleSuite) -> Iterator[Any]:
    page = _signed_in(browser, console_suite, "office")
    yield page
    assert page.errors == [], f"script errors or CSP violations: {page.errors}"
    page.context.close()


def _graded_event(page: Any) -> dict[str, Any]:
    """The largest graded event whose posts the search finds by its event id (the grader writes it onto them)."""

    def find() -> dict[str, Any] | None:
        reply = _api(page, "/api/events?min_level=WARNING_LEVEL_BLUE&page_size=50")
        events = [e for e in reply["body"].get("events", []) if e.get("metrics") and e.get("grade", {}).get("reasons")]
        for event in sorted(events, key=lambda e: -int(e.get("post_count", 0))):
            posts = _api(page, f"/api/search/posts?event_id={event['id']}&page_size=1")["body"]
            if int(posts.get("total", 0)) > 0:
                return event
        return None

    return wait_until(find, 60, "no graded event whose posts carry its id")  # type: ignore[no-any-return]


def test_sign_in_keeps_the_token_out_of_the_page(browser: Any, console_suite: ConsoleSuite, office: Any) -> None:
    cookies = office.context.cookies()
    [session] = [c for c in cookies if c["name"] == "__Host-qf_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    assert console_suite.tokens["office"] not in office.evaluate("document.cookie + JSON.stringify(localStorage)")
    assert "office" in office.text_content("#who")


def test_search_highlights_a_chinese_term(console_suite: ConsoleSuite, office: Any, shots: Path) -> None:
    def hits() -> int:
        office.goto(console_suite.url + f"/#/search?q={TERM}")
        office.reload()
        office.wait_for_selector("#search-status:not(:empty)")
        office.wait_for_timeout(300)
        return office.locator("#results mark").count()

    wait_until(hits, 60, f"no highlighted hit for {TERM}")
    marks = "".join(office.locator("#results mark").all_text_contents())
    assert set(TERM) <= set(marks), marks
    assert "条结果" in office.text_content("#search-status")
    office.click("#save-search")
    assert TERM in office.text_content(".saved")
    office.screenshot(path=str(shots / "search.png"))


def test_search_pages_forward_without_repeating(console_suite: ConsoleSuite, office: Any) -> None:
    office.goto(console_suite.url + "/#/search?q=微博")
    office.reload()
    office.wait_for_selector("#results li.hit")
    first = office.eval_on_selector_all("#results li.hit", "items => items.map(i => i.dataset.id)")
    assert len(first) == 20, "a full first page (the term is common in the shared data)"
    office.click("#more")
    # (no wait_for_function: the page's CSP forbids the eval it needs, as it should)
    office.wait_for_selector("#page-label:has-text('2')")
    second = office.eval_on_selector_all("#results li.hit", "items => items.map(i => i.dataset.id)")
    assert second and not set(first) & set(second)


def test_event_page_draws_its_chart_and_reasons(console_suite: ConsoleSuite, office: Any, shots: Path) -> None:
    event = _graded_event(office)
    office.goto(console_suite.url + f"/#/event/{event['id']}")
    canvas = office.wait_for_selector(".chart-panel canvas")
    office.wait_for_selector(".chart-panel .chart[data-drawn=true]")
    assert office.evaluate(_CANVAS_DRAWN, canvas) > 100, "the chart drew nothing"
    office.wait_for_selector(".grade-panel .reasons li")
    reasons = office.locator(".grade-panel .reasons li").all_text_contents()
    assert len(reasons) == len(event["grade"]["reasons"]) >= 1
    assert event["grade"]["reasons"][0]["message"] in reasons[0]
    office.wait_for_selector(".chart-panel .chart.trend[data-drawn=true]")  # its posts per hour (search histogram)
    office.wait_for_selector(".posts-panel ol.posts li")
    office.wait_for_selector(".explain-panel .criteria tr")
    office.wait_for_selector(".case-panel .panel-body > *")
    office.wait_for_selector(".history-panel .panel-body :is(ol.level-history, p)")  # in the screenshot too
    office.screenshot(path=str(shots / "event.png"), full_page=True)


def test_dashboard_shows_levels_trend_and_cases(console_suite: ConsoleSuite, office: Any, shots: Path) -> None:
    # Runs after search and the event page: by then the posts are indexed and graded.
    office.goto(console_suite.url + "/#/dashboard")
    office.wait_for_selector(".tile-count")
    counts = [int(n) for n in office.locator(".tile-count").all_text_contents()]
    assert sum(counts) >= 1, counts
    canvas = office.wait_for_selector(".trend-panel canvas")
    # The trend is the search's hourly histogram over every matching post (the events' metrics only without it).
    assert "检索聚合" in office.text_content(".trend-panel")
    assert office.evaluate(_CANVAS_DRAWN, canvas) > 0
    office.wait_for_selector(".cases .panel-body :is(ol, p)")
    office.screenshot(path=str(shots / "dashboard.png"))


def test_a_role_without_the_grant_is_refused(browser: Any, console_suite: ConsoleSuite) -> None:
    police = _signed_in(browser, console_suite, "police")  # granted ListTasks and CompleteTask only
    try:
        police.goto(console_suite.url + f"/#/search?q={TERM}")
        police.wait_for_selector("#search-status .status-403")
        assert police.locator("#results li").count() == 0
        police.goto(console_suite.url + "/#/cases")
        police.wait_for_selector(".board .status-403")
        assert _api(police, "/api/cases")["status"] == 403
        assert _api(police, "/api/tasks")["status"] == 200, "what the role is granted still works"
        police.click("#sign-out")
        police.wait_for_selector("#sign-in:not([hidden])")
        assert _api(police, "/api/tasks")["status"] == 401, "the session ended with the logout"
    finally:
        police.context.close()


def test_case_board_acknowledges_as_the_office(console_suite: ConsoleSuite, office: Any, shots: Path) -> None:
    def awaiting() -> dict[str, Any] | None:
        cases = _api(office, "/api/cases?status=CASE_STATUS_AWAITING_ACKNOWLEDGEMENT")["body"].get("cases", [])
        return cases[0] if cases else None

    case = wait_until(awaiting, 60, "the coordinator opened no case awaiting acknowledgement")
    office.goto(console_suite.url + f"/#/cases/{case['id']}")
    office.wait_for_selector("#case-detail .clock")
    office.wait_for_selector(".tasks-panel .panel-body > *")
    assert office.get_attribute("#case-detail a.button", "href") == f"/api/cases/{case['id']}/report"
    report = office.evaluate(
        "async (u) => { const r = await fetch(u); return [r.status, r.headers.get('content-type'), await r.text()]; }",
        f"/api/cases/{case['id']}/report",
    )
    assert report[0] == 200 and report[1].startswith("text/html") and case["title"][:8] in report[2]
    office.click("#ack")
    office.wait_for_selector("#case-detail #acked")
    assert office.locator("#ack").count() == 0
    office.evaluate("window.scrollTo(0, 0)")
    office.screenshot(path=str(shots / "cases.png"))
    after = _api(office, f"/api/cases/{case['id']}")["body"]["case"]
    assert after["status"] != "CASE_STATUS_AWAITING_ACKNOWLEDGEMENT" and after["acknowledged_at"]


def _draft_in_review(suite: ConsoleSuite, case: dict[str, Any]) -> Any:
    """A statement for the case, written and submitted by the office through the gateway's gRPC API."""
    credentials = grpc.ssl_channel_credentials(ca_file(suite.state).read_bytes())
    metadata = [("authorization", f"Bearer {suite.tokens['office']}")]
    with grpc.secure_channel(f"127.0.0.1:{suite.grpc_port}", credentials) as channel:
        stub = publication_pb2_grpc.PublisherServiceStub(channel)
        draft = publication_pb2.Draft(
            case_id=case["id"],
            kind=publication_pb2.DRAFT_KIND_STATEMENT,
            title=f"关于{case['title'][:20]}的情况通报",
            body="经核查，相关情况正在调查中，将及时公布进展。",
            level=common_pb2.WARNING_LEVEL_BLUE,
        )
        created = stub.CreateDraft(publication_pb2.CreateDraftRequest(draft=draft), metadata=metadata, timeout=10)
        request = publication_pb2.SubmitForReviewRequest(draft_id=created.draft.id)
        return stub.SubmitForReview(request, metadata=metadata, timeout=10).draft


def test_the_approver_signs_a_draft_from_their_queue(browser: Any, console_suite: ConsoleSuite, office: Any) -> None:
    cases = _api(office, "/api/cases")["body"].get("cases", [])
    assert cases, "the coordinator opened cases"
    draft = _draft_in_review(console_suite, cases[0])
    assert draft.status == publication_pb2.DRAFT_STATUS_IN_REVIEW
    assert [step.role for step in draft.sign_off] == [DIRECTOR_ROLE]
    office.goto(console_suite.url + "/#/publications")
    office.wait_for_selector(".drafts li.draft")
    assert office.locator(".queue button").count() == 0, "the office holds no signing role: its queue is empty"
    director = _signed_in(browser, console_suite, "director")
    try:
        director.goto(console_suite.url + "/#/publications")
        director.wait_for_selector(".queue li.draft")
        assert draft.title in director.text_content(".queue")
        director.click(".queue li.draft button.primary")
        director.wait_for_selector(".queue .done")
        after = _api(director, f"/api/drafts/{draft.id}")["body"]["draft"]
        assert after["status"] == "DRAFT_STATUS_APPROVED"
        assert after["sign_off"][0]["decision"] == "SIGN_OFF_DECISION_APPROVED"
    finally:
        director.context.close()


def test_language_toggle_and_wall_mode(console_suite: ConsoleSuite, office: Any) -> None:
    office.goto(console_suite.url + "/#/dashboard")
    office.click("#lang")
    office.wait_for_selector(".levels h2")
    assert office.text_content("header h1") == "Qingfeng · Opinion console"
    assert office.text_content(".levels h2") == "Today's events by level"
    office.click("#lang")
    assert office.text_content("header h1") == "清风 · 舆情工作台"
    office.click("#wall")
    assert "wall" in (office.get_attribute("body", "class") or "")
    office.click("#wall")


def test_publications_say_the_publisher_is_not_there(console_suite: ConsoleSuite, office: Any) -> None:
    publisher = console_suite.processes["publisher"]
    assert publisher.stop() == 0
    try:
        office.goto(console_suite.url + "/#/publications")
        office.wait_for_selector(".drafts .status-503")
        assert "暂不可用" in office.text_content(".drafts")
        assert office.locator("header h1").text_content() == "清风 · 舆情工作台"
    finally:
        # Later tests (in any order) find the suite whole again.
        publisher.restart()
        assert publisher.wait_serving(timeout_s=90) == 1, publisher.log_tail()
