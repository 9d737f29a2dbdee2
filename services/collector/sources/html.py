"""Forum and news sites scraped with CSS selectors: walk the list pages, follow each item to its article page,
emit the article and its comments.

The first list page is fetched conditionally; when it has not changed (304) nothing else is fetched. When some
article pages fail, the items that worked are still emitted, the fetch is reported as partly failed, and the stored
validators are cleared so the next fetch reads the list again instead of getting a 304 and skipping the gaps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from qingfeng.v1 import post_pb2, source_pb2

from services.collector.fetch import FetchError, FetchResponse, Politeness
from services.collector.ports import FetchState
from services.collector.sources.base import (
    Emit,
    Item,
    Outcome,
    SourceContext,
    emit_all,
    rejected,
    rejected_for_fetch_error,
)
from services.collector.sources.html_extract import HtmlRules, RulesError, extract_article, parse_list_page
from services.collector.sources.text import TooDeep

__all__ = ["HtmlSource"]

_log = logging.getLogger(__name__)


@dataclass
class _Run:
    """The running tally of one fetch."""

    source: source_pb2.Source
    rules: HtmlRules
    polite: Politeness
    emit: Emit
    emitted: int = 0
    failures: list[str] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)


class HtmlSource:
    """``SourceAdapter`` for ``SOURCE_KIND_HTML``. ``rules`` overrides the rules built from a source's HtmlConfig
    (by source id), for selectors the contract does not carry yet."""

    def __init__(self, context: SourceContext, rules: dict[str, HtmlRules] | None = None) -> None:
        self._ctx = context
        self._rules = rules or {}

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        rules = self._rules.get(source.id) or HtmlRules.from_config(source.html)
        if not rules.item_selector:
            return Outcome(error="html source has no item_selector")
        run = _Run(source, rules, Politeness.for_source(source), emit)
        first = await self._get(run, source.url, state)
        if first is None:
            return Outcome(error=run.failures[0], emitted=run.emitted)
        if first.not_modified:
            return Outcome(not_modified=True)
        try:
            await self._walk(run, first)
        except RulesError as err:
            return Outcome(error=str(err), emitted=run.emitted)
        if run.failures:
            summary = f"{len(run.failures)} page(s) failed, first: {run.failures[0]}"
            return Outcome(fetch_state=FetchState(), error=summary, emitted=run.emitted)
        return Outcome(fetch_state=first.fetch_state(), emitted=run.emitted)

    async def _walk(self, run: _Run, first: FetchResponse) -> None:
        response: FetchResponse | None = first
        pages = 0
        while response is not None and pages < run.rules.max_pages:
            pages += 1
            run.visited.add(response.url)
            text = await self._decode(run, response)
            if text is None:
                return
            # In a worker thread: even bounded (TooDeep), a large page is CPU the event loop should not wait for.
            try:
                page = await asyncio.to_thread(
                    parse_list_page, text, response.url, run.rules, run.source, collected_at=self._ctx.now()
                )
            except TooDeep as err:
                await self._too_deep(run, response, err)
                return
            if not page.links and not page.inline:
                run.failures.append(f"no items match {run.rules.item_selector!r} on {response.url}")
            await self._send(run, [*page.inline, *page.rejects])
            for link in page.links:
                if link in run.visited:
                    continue
                run.visited.add(link)
                await self._article(run, link)
            if not page.next_url or page.next_url in run.visited or pages >= run.rules.max_pages:
                return
            response = await self._get(run, page.next_url, None)

    async def _article(self, run: _Run, url: str) -> None:
        response = await self._get(run, url, None)
        if response is None:
            return
        text = await self._decode(run, response)
        if text is None:
            return
        try:
            items = await asyncio.to_thread(
                extract_article, text, response.url, run.rules, run.source, collected_at=self._ctx.now()
            )
        except TooDeep as err:
            await self._too_deep(run, response, err)
            return
        await self._send(run, items)

    async def _too_deep(self, run: _Run, response: FetchResponse, err: TooDeep) -> None:
        """A page nested too deeply to parse: a failure of this page, and a dead letter with its first bytes."""
        run.failures.append(f"{response.url}: {err}")
        reason = post_pb2.DEAD_LETTER_REASON_MALFORMED
        await self._send(run, [rejected(run.source, reason, str(err), response.body[:4096], response.url)])

    async def _get(self, run: _Run, url: str, state: FetchState | None) -> FetchResponse | None:
        """One page; a failure is recorded (and dead-lettered when it is about the content) and gives None."""
        try:
            return await self._ctx.fetcher.get(url, state=state, politeness=run.polite)
        except FetchError as err:
            _log.info("html source %s: %s", run.source.id, err)
            run.failures.append(str(err))
            reject = rejected_for_fetch_error(run.source, err)
            if reject is not None:
                await self._send(run, [reject])
            return None

    async def _decode(self, run: _Run, response: FetchResponse) -> str | None:
        try:
            return response.text(run.rules.encoding)
        except FetchError as err:
            run.failures.append(str(err))
            reject = rejected_for_fetch_error(run.source, err, response.body)
            if reject is not None:
                await self._send(run, [reject])
            return None

    async def _send(self, run: _Run, items: list[Item]) -> None:
        if items:
            run.emitted += await emit_all(run.emit, items, self._ctx.batch_size)
