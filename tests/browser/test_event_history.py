"""The event page's level history in headless Chromium against the running suite: every level change the grader
kept (GraderService/ListEventGrades through the console API) is listed, newest first, from and to which level, with
the reasons of its grade (criteria, values, thresholds) as the grader gave them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ConsoleSuite
from tests.browser.test_console import _api, _graded_event, _signed_in

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def office(browser: Any, console_suite: ConsoleSuite) -> Iterator[Any]:
    page = _signed_in(browser, console_suite, "office")
    yield page
    assert page.errors == [], f"script errors or CSP violations: {page.errors}"
    page.context.close()


def test_event_page_lists_every_level_change_with_its_reasons(
    console_suite: ConsoleSuite, office: Any, tmp_path: Path
) -> None:
    event = _graded_event(office)
    reply = _api(office, f"/api/events/{event['id']}/grades")
    assert reply["status"] == 200, reply
    changes = reply["body"]["changes"]
    current = _api(office, f"/api/events/{event['id']}")["body"]["event"]
    assert changes and changes[-1]["to_level"] == current["level"], "the last change leads to the current level"
    assert all(c["reasons"] for c in changes), "every grade has its reasons"

    office.goto(console_suite.url + f"/#/event/{event['id']}")
    office.wait_for_selector(".history-panel li.level-change")
    items = office.locator(".history-panel li.level-change")
    assert items.count() == len(changes)
    newest_first = list(reversed(changes))
    shown = office.eval_on_selector_all(".history-panel li.level-change", "items => items.map(i => i.dataset.sequence)")
    assert shown == [str(c["sequence"]) for c in newest_first]
    for index, change in enumerate(newest_first):
        item = items.nth(index)
        badges = item.locator("p.change .level")
        assert badges.nth(0).get_attribute("class") == f"level {change['from_level']}"
        assert badges.nth(1).get_attribute("class") == f"level {change['to_level']}"
        reasons = item.locator(".reasons li").all_text_contents()
        assert len(reasons) == len(change["reasons"]), change["id"]
        for text, reason in zip(reasons, change["reasons"], strict=True):
            assert reason["message"] in text, (text, reason)
        assert (item.locator(".rising").count() > 0) == bool(change.get("rising")), change["id"]
    # The reasons of a change show its numbers: value and threshold of a fired criterion, as the grader wrote them.
    fired = [r for c in changes for r in c["reasons"] if r.get("threshold")]
    assert fired, "some change fired a metric criterion"
    office.screenshot(path=str(tmp_path / "event-history.png"), full_page=True)
