"""The console's escalation and rejection, in headless Chromium against the running suite: a leader escalates a
case from the case board (level and reason) and acknowledges it, the office's analyst is refused by the coordinator
and an identity without the grant by the gateway; the approver rejects a draft from the sign-off queue with a
required comment, which then shows on the draft's history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from qingfeng.v1 import publication_pb2

from tests.browser.conftest import ConsoleSuite, wait_until
from tests.browser.test_console import _api, _draft_in_review, _signed_in

pytestmark = pytest.mark.integration

LEVELS = ["WARNING_LEVEL_BLUE", "WARNING_LEVEL_YELLOW", "WARNING_LEVEL_ORANGE", "WARNING_LEVEL_RED"]


@pytest.fixture(scope="module")
def leader(browser: Any, console_suite: ConsoleSuite) -> Iterator[Any]:
    page = _signed_in(browser, console_suite, "leader")
    yield page
    assert page.errors == [], f"script errors or CSP violations: {page.errors}"
    page.context.close()


def _escalatable(page: Any) -> dict[str, Any]:
    """An open case below red, preferably 涉腐 (it then moves up the ladder, not only in level)."""

    def find() -> dict[str, Any] | None:
        cases = _api(page, "/api/cases?page_size=200")["body"].get("cases", [])
        open_below_red = [c for c in cases if c.get("level") in LEVELS[:-1] and c.get("status") != "CASE_STATUS_CLOSED"]
        open_below_red.sort(key=lambda c: (not c.get("corruption_related"), LEVELS.index(c["level"])))
        return open_below_red[0] if open_below_red else None

    return wait_until(find, 60, "the coordinator opened no open case below red")  # type: ignore[no-any-return]


def _post(page: Any, path: str, token: str, body: dict[str, Any]) -> Any:
    """A POST with a bearer token from the page (no session, so no CSRF token is involved)."""
    return page.evaluate(
        """async ([path, token, body]) => {
          const r = await fetch(path, {method: 'POST', body: JSON.stringify(body),
            headers: {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'}});
          return {status: r.status, body: await r.json()};
        }""",
        [path, token, body],
    )


def test_a_leader_escalates_and_other_roles_are_refused(browser: Any, console_suite: ConsoleSuite, leader: Any) -> None:
    case = _escalatable(leader)
    # Red: the grader goes on grading the live events meanwhile, and could reach a lower target first.
    target = LEVELS[-1]
    path = f"/api/cases/{case['id']}/escalate"
    # The office's analyst holds the grant at the gateway but not a role the routing policy names.
    office = _signed_in(browser, console_suite, "office")
    try:
        office.goto(console_suite.url + f"/#/cases/{case['id']}")
        office.click("#escalate")
        office.select_option("#escalate-level", target)
        office.fill("#escalate-reason", "分析员试图升级")
        office.click("#escalate-submit")
        office.wait_for_selector("#escalate-result .status-403")
        police = _post(office, path, console_suite.tokens["police"], {"level": target, "reason": "x"})
        assert police["status"] == 403
        assert police["body"]["error"]["method"] == "/qingfeng.v1.CoordinatorService/EscalateCase"
        assert _api(office, f"/api/cases/{case['id']}")["body"]["case"]["level"] == case["level"]
    finally:
        office.context.close()
    leader.goto(console_suite.url + f"/#/cases/{case['id']}")
    leader.click("#escalate")
    assert (
        leader.locator("#escalate-level option").evaluate_all("(os) => os.map((o) => o.value)")
        == LEVELS[LEVELS.index(case["level"]) + 1 :]
    ), "only higher levels are offered"
    leader.select_option("#escalate-level", target)
    leader.fill("#escalate-reason", "传统媒体开始报道，热度快速上升")
    leader.click("#escalate-submit")
    leader.wait_for_selector(f"#case-detail h2 .level.{target}")
    after = _api(leader, f"/api/cases/{case['id']}")["body"]["case"]
    assert after["level"] == target and after["status"] == "CASE_STATUS_AWAITING_ACKNOWLEDGEMENT"
    if after.get("routed_to") != case.get("routed_to"):  # 涉腐: up the ladder, recorded as a manual escalation
        assert "ESCALATION_CAUSE_MANUAL" in [e["cause"] for e in after["escalations"]]
        assert "manual" in leader.text_content("#case-detail .escalations")
    else:  # not 涉腐 (or already at its rung): the level rises, the route stays with the office
        assert not case.get("corruption_related") or case.get("routed_to") == "OFFICIAL_LEVEL_MUNICIPAL_COMMITTEE"
    # The leader acknowledges it too (it awaits acknowledgement again after the raise).
    leader.click("#ack")
    leader.wait_for_selector("#case-detail #acked")
    assert _api(leader, f"/api/cases/{case['id']}")["body"]["case"]["status"] == "CASE_STATUS_ACKNOWLEDGED"


def test_the_approver_rejects_a_draft_with_a_comment(browser: Any, console_suite: ConsoleSuite, leader: Any) -> None:
    cases = _api(leader, "/api/cases")["body"].get("cases", [])
    assert cases, "the coordinator opened cases"
    draft = _draft_in_review(console_suite, cases[-1])
    assert draft.status == publication_pb2.DRAFT_STATUS_IN_REVIEW
    row = f'.queue li.draft[data-id="{draft.id}"]'
    comment = "口径需与公安机关通报一致，请修改后重新报审"
    director = _signed_in(browser, console_suite, "director")
    try:
        director.goto(console_suite.url + "/#/publications")
        director.wait_for_selector(row)
        director.click(f"{row} button.danger")  # no comment: the form does not send
        director.wait_for_timeout(300)
        assert _api(director, f"/api/drafts/{draft.id}")["body"]["draft"]["status"] == "DRAFT_STATUS_IN_REVIEW"
        director.fill(f"{row} input[name=comment]", comment)
        director.click(f"{row} button.danger")
        director.wait_for_selector(f"{row} .signoff-history li.rejected q.comment")
        assert director.text_content(f"{row} .signoff-history q.comment") == comment
        after = _api(director, f"/api/drafts/{draft.id}")["body"]["draft"]
        assert after["status"] == "DRAFT_STATUS_REJECTED"
        step = after["sign_off"][0]
        assert step["decision"] == "SIGN_OFF_DECISION_REJECTED" and step["comment"] == comment
        # Drawn afresh, the draft has left the queue and carries the comment in its history.
        director.goto(console_suite.url + "/#/dashboard")
        director.goto(console_suite.url + "/#/publications")
        director.wait_for_selector(f'.drafts li.draft[data-id="{draft.id}"] q.comment')
        assert director.locator(row).count() == 0
        assert comment in director.text_content(f'.drafts li.draft[data-id="{draft.id}"] .signoff-history')
        assert director.errors == []
    finally:
        director.context.close()
