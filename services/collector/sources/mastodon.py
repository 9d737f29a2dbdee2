"""The Mastodon API of one instance (``Source.url``): hashtag timelines, accounts' statuses, the local timeline.

A boost (``reblog``) becomes a post of the booster pointing at the boosted status, which is emitted too; a reply
points at the status it answers (``in_reply_to_id``). Pages are followed through the ``Link: <…>; rel="next"`` header
(``max_id``) up to ``max_pages`` per timeline and fetch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import Credentials, FetchError, Politeness, origin_of
from services.collector.ports import FetchState
from services.collector.sources._json import ShapeError, count, dead_letter_json, ident, loads, mapping, opt_str
from services.collector.sources.base import (
    Emit,
    Item,
    Outcome,
    SourceContext,
    emit_all,
    new_post,
    platform_of,
    post_id,
    rejected,
    rejected_for_fetch_error,
    set_time,
    unique_posts,
)
from services.collector.sources.text import html_to_text
from services.collector.sources.timeparse import parse_time

__all__ = ["MastodonSource", "next_link", "parse_statuses"]

_KIND = common_pb2.SOURCE_KIND_MASTODON
_LINK = re.compile(r"<([^>]+)>\s*;\s*rel=\"?([^\";]+)\"?")
_PAGE_LIMIT = 40  # the API's maximum for timelines


def next_link(header: str) -> str:
    """The ``rel="next"`` URL of a Link header, "" when there is none."""
    for url, rel in _LINK.findall(header):
        if "next" in rel.split():
            return str(url)
    return ""


def _status_post(
    status: Mapping[str, Any], source: source_pb2.Source, collected_at: datetime, where: str
) -> post_pb2.Post:
    native = ident(status.get("id"), f"{where}.id")
    account = mapping(status.get("account"), f"{where}.account")
    raw_time = opt_str(status.get("created_at"), f"{where}.created_at")
    created_at = parse_time(raw_time)
    if created_at is None:
        raise ShapeError(f"{where}.created_at {raw_time!r} is not a time")
    url = opt_str(status.get("url"), f"{where}.url") or opt_str(status.get("uri"), f"{where}.uri")
    platform = platform_of(url or source.url)
    post = new_post(source, native_id=native, url=url, collected_at=collected_at, platform=platform)
    post.title = opt_str(status.get("spoiler_text"), f"{where}.spoiler_text")  # the content warning heads the post
    post.text = html_to_text(opt_str(status.get("content"), f"{where}.content"))
    set_time(post.created_at, created_at)
    post.language = opt_str(status.get("language"), f"{where}.language")
    post.author.id = ident(account.get("id"), f"{where}.account.id")
    post.author.name = opt_str(account.get("display_name"), "display_name") or opt_str(account.get("acct"), "acct")
    post.author.followers = count(account.get("followers_count"), f"{where}.account.followers_count")
    fields = account.get("fields")
    # Mastodon's verification is a profile link confirmed by the instance (verified_at set).
    post.author.is_verified = isinstance(fields, list) and any(
        isinstance(f, dict) and f.get("verified_at") for f in fields
    )
    post.reposts = count(status.get("reblogs_count"), f"{where}.reblogs_count")
    post.comments = count(status.get("replies_count"), f"{where}.replies_count")
    post.likes = count(status.get("favourites_count"), f"{where}.favourites_count")
    attachments = status.get("media_attachments")
    if isinstance(attachments, list):
        post.media_urls.extend(a["url"] for a in attachments if isinstance(a, dict) and isinstance(a.get("url"), str))
    reply_to = status.get("in_reply_to_id")
    if reply_to is not None:
        post.parent_id = post_id(_KIND, source.id, ident(reply_to, f"{where}.in_reply_to_id"))
    return post


def _status_items(status: object, source: source_pb2.Source, collected_at: datetime, where: str) -> list[Item]:
    """The post of one status, preceded by the boosted status when it is a boost."""
    try:
        body = mapping(status, where)
        post = _status_post(body, source, collected_at, where)
        reblog = body.get("reblog")
        if reblog is None:
            return [post]
        original = _status_post(mapping(reblog, f"{where}.reblog"), source, collected_at, f"{where}.reblog")
        # The boost has no text of its own: it is the booster passing the original on.
        post.parent_id = original.id
        post.root_id = original.root_id or original.parent_id or original.id
        return [original, post]
    except (ValueError, OverflowError, TypeError) as err:  # ShapeError, or one we did not foresee: this item only
        payload = dead_letter_json(status)
        message = str(err) if isinstance(err, ShapeError) else f"status could not be read: {type(err).__name__}: {err}"
        return [rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, payload, where)]


def parse_statuses(payload: object, source: source_pb2.Source, *, collected_at: datetime, origin: str) -> list[Item]:
    """Posts of a timeline answer (a JSON list of statuses); each broken status is one ``Rejected``.

    Raises ``ShapeError`` when the answer is not a list (e.g. ``{"error": "..."}``).
    """
    if not isinstance(payload, list):
        detail = payload.get("error") if isinstance(payload, dict) else None
        raise ShapeError(f"API error: {detail}" if detail else "answer is not a list of statuses")
    return unique_posts(
        _status_items(status, source, collected_at, f"{origin} [{index}]") for index, status in enumerate(payload)
    )


class MastodonSource:
    """``SourceAdapter`` for ``SOURCE_KIND_MASTODON``."""

    def __init__(self, context: SourceContext, *, max_pages: int = 3) -> None:
        self._ctx = context
        self._max_pages = max(1, max_pages)

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        config = source.mastodon
        base = source.url.rstrip("/")
        credentials: Credentials | None = None
        if config.token_secret_name:
            token = self._ctx.secret(config.token_secret_name)
            if not token:
                return Outcome(error=f"secret {config.token_secret_name!r} not found")
            # Bound to the instance's origin: never sent to a redirect or a next link elsewhere.
            credentials = Credentials.for_url(source.url, {"Authorization": f"Bearer {token.strip()}"})
        polite = Politeness.for_source(source)
        polite = Politeness(polite.max_attempts, False, polite.min_interval_s)  # an API, not crawled pages
        run = _Run(self._ctx, self._max_pages, source, credentials, polite, emit)
        timelines = [f"{base}/api/v1/timelines/tag/{quote(tag.lstrip('#'), safe='')}" for tag in config.hashtags]
        if config.local_timeline:
            timelines.append(f"{base}/api/v1/timelines/public?local=true")
        for acct in config.accounts:
            account_id = await run.lookup(base, acct)
            if account_id:
                timelines.append(f"{base}/api/v1/accounts/{quote(account_id, safe='')}/statuses")
        if not timelines and not run.failures:
            return Outcome(error="mastodon source has no hashtags, accounts or local timeline")
        for timeline in timelines:
            await run.timeline(timeline)
        if run.failures:
            summary = f"{len(run.failures)} request(s) failed, first: {run.failures[0]}"
            return Outcome(error=summary, emitted=run.emitted)
        return Outcome(emitted=run.emitted)


class _Run:
    """One fetch of a Mastodon source: the requests made and what came of them."""

    def __init__(
        self,
        ctx: SourceContext,
        max_pages: int,
        source: source_pb2.Source,
        credentials: Credentials | None,
        polite: Politeness,
        emit: Emit,
    ) -> None:
        self.ctx = ctx
        self.max_pages = max_pages
        self.source = source
        self.credentials = credentials
        self.polite = polite
        self.emit = emit
        self.failures: list[str] = []
        self.emitted = 0

    async def _json(self, url: str) -> tuple[object, str] | None:
        """The parsed answer and its Link header; None (with the failure recorded and dead-lettered) otherwise."""
        body = b""
        try:
            response = await self.ctx.fetcher.get(url, credentials=self.credentials, politeness=self.polite)
            body = response.body
            return loads(response.text()), response.headers.get("link", "")
        except FetchError as err:
            self.failures.append(str(err))
            reject = rejected_for_fetch_error(self.source, err, body)
            if reject is not None:
                self.emitted += await emit_all(self.emit, [reject], 1)
        except ValueError as err:
            self.failures.append(f"{url}: invalid JSON: {err}")
            reject = rejected(self.source, post_pb2.DEAD_LETTER_REASON_MALFORMED, f"invalid JSON: {err}", body, url)
            self.emitted += await emit_all(self.emit, [reject], 1)
        return None

    async def lookup(self, base: str, acct: str) -> str:
        answer = await self._json(f"{base}/api/v1/accounts/lookup?{urlencode({'acct': acct.lstrip('@')})}")
        if answer is None:
            return ""
        account = answer[0]
        if isinstance(account, dict) and isinstance(account.get("id"), str | int):
            return str(account["id"])
        self.failures.append(f"account {acct!r} not found")
        return ""

    async def timeline(self, url: str) -> None:
        separator = "&" if "?" in url else "?"
        page_url = f"{url}{separator}limit={_PAGE_LIMIT}"
        for _ in range(self.max_pages):
            answer = await self._json(page_url)
            if answer is None:
                return
            payload, link = answer
            try:
                items = parse_statuses(payload, self.source, collected_at=self.ctx.now(), origin=page_url)
            except ShapeError as err:
                self.failures.append(f"{page_url}: {err}")
                text = json.dumps(payload, ensure_ascii=False, default=str)
                reason = post_pb2.DEAD_LETTER_REASON_MALFORMED
                self.emitted += await emit_all(self.emit, [rejected(self.source, reason, str(err), text, page_url)], 1)
                return
            self.emitted += await emit_all(self.emit, items, self.ctx.batch_size)
            page_url = next_link(link)
            if not page_url or not payload:
                return
            if not await self._own_origin(page_url, link):
                return

    async def _own_origin(self, url: str, link: str) -> bool:
        """Whether a next link stays on the instance; one that leaves it is refused (SSRF, token) and recorded."""
        try:
            if origin_of(url) == origin_of(self.source.url):
                return True
            problem = f"next link {url[:200]!r} leaves the instance; not followed"
        except httpx.InvalidURL:
            problem = f"next link {url[:200]!r} is not a valid URL"
        self.failures.append(problem)
        reject = rejected(self.source, post_pb2.DEAD_LETTER_REASON_INVALID, problem, link, url[:200])
        self.emitted += await emit_all(self.emit, [reject], 1)
        return False
