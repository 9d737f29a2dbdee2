"""A Weibo-style JSON microblog API: the timelines of followed accounts and keyword searches.

Endpoints are relative to ``Source.url`` (e.g. ``https://api.weibo.example/2/``): ``statuses/user_timeline.json?uid=``
and ``search/topics.json?q=``, each answering ``{"statuses": [...]}``. A repost carries the original as
``retweeted_status``; both become posts and the repost points at the original (Weibo flattens repost chains, so the
original is also the root). The access token comes from the secrets directory and travels in the Authorization
header, never in a URL that could end up in a log or a dead letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.fetch import Credentials, FetchError, Politeness
from services.collector.ports import FetchState
from services.collector.sources._json import ShapeError, count, dead_letter_json, ident, loads, mapping, opt_str
from services.collector.sources.base import (
    Emit,
    Item,
    Outcome,
    SourceContext,
    emit_all,
    new_post,
    post_id,
    rejected,
    rejected_for_fetch_error,
    set_time,
    unique_posts,
)
from services.collector.sources.text import html_to_text
from services.collector.sources.timeparse import parse_time

__all__ = ["WeiboSource", "parse_statuses"]

_PLATFORM = "weibo.com"
# Weibo's verified_type 3 is a media organisation (0 is a person, 1 government, 2 company …).
_VERIFIED_TYPE_MEDIA = 3
_KIND = common_pb2.SOURCE_KIND_WEIBO_API


def _status_post(
    status: Mapping[str, Any], source: source_pb2.Source, collected_at: datetime, where: str
) -> post_pb2.Post:
    native = ident(status.get("idstr") or status.get("id"), f"{where}.id")
    user = mapping(status.get("user"), f"{where}.user")
    user_id = ident(user.get("idstr") or user.get("id"), f"{where}.user.id")
    raw_time = opt_str(status.get("created_at"), f"{where}.created_at")
    created_at = parse_time(raw_time, now=collected_at)
    if created_at is None:
        raise ShapeError(f"{where}.created_at {raw_time!r} is not a time")
    if "text" not in status:
        raise ShapeError(f"{where}.text is missing")
    text = html_to_text(opt_str(status.get("text"), f"{where}.text"))
    url = f"https://{_PLATFORM}/{user_id}/{native}"
    post = new_post(source, native_id=native, url=url, collected_at=collected_at, platform=_PLATFORM)
    post.text = text
    set_time(post.created_at, created_at)
    post.author.id = user_id
    post.author.name = opt_str(user.get("screen_name"), f"{where}.user.screen_name")
    post.author.followers = count(user.get("followers_count"), f"{where}.user.followers_count")
    post.author.is_verified = bool(user.get("verified"))
    post.author.is_media = user.get("verified_type") == _VERIFIED_TYPE_MEDIA
    post.reposts = count(status.get("reposts_count"), f"{where}.reposts_count")
    post.comments = count(status.get("comments_count"), f"{where}.comments_count")
    post.likes = count(status.get("attitudes_count"), f"{where}.attitudes_count")
    pictures = status.get("pic_urls")
    if isinstance(pictures, list):
        post.media_urls.extend(p["thumbnail_pic"] for p in pictures if isinstance(p, dict) and p.get("thumbnail_pic"))
    return post


def _is_deleted(status: Mapping[str, Any]) -> bool:
    """A repost of a deleted original still names its id, but nothing else is left of it."""
    return str(status.get("deleted", "")) == "1" or not isinstance(status.get("user"), Mapping)


def _status_items(status: object, source: source_pb2.Source, collected_at: datetime, where: str) -> list[Item]:
    """The post of one status, preceded by its original when it is a repost."""
    try:
        body = mapping(status, where)
        post = _status_post(body, source, collected_at, where)
        original = body.get("retweeted_status")
        if original is None:
            return [post]
        original_body = mapping(original, f"{where}.retweeted_status")
        parent_native = ident(original_body.get("idstr") or original_body.get("id"), f"{where}.retweeted_status.id")
        post.parent_id = post.root_id = post_id(_KIND, source.id, parent_native)
        if _is_deleted(original_body):
            return [post]
        return [_status_post(original_body, source, collected_at, f"{where}.retweeted_status"), post]
    except (ValueError, OverflowError, TypeError) as err:  # ShapeError, or one we did not foresee: this item only
        payload = dead_letter_json(status)
        message = str(err) if isinstance(err, ShapeError) else f"status could not be read: {type(err).__name__}: {err}"
        return [rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, payload, where)]


def parse_statuses(payload: object, source: source_pb2.Source, *, collected_at: datetime, origin: str) -> list[Item]:
    """Posts of an API answer (``{"statuses": [...]}`` or a bare list); each broken status is one ``Rejected``.

    Raises ``ShapeError`` when the answer as a whole is not a list of statuses (e.g. an API error object).
    """
    statuses = payload.get("statuses") if isinstance(payload, dict) else payload
    if not isinstance(statuses, list):
        detail = payload.get("error") if isinstance(payload, dict) else None
        raise ShapeError(f"API error: {detail}" if detail else "answer has no list of statuses")
    return unique_posts(
        _status_items(status, source, collected_at, f"{origin} statuses[{index}]")
        for index, status in enumerate(statuses)
    )


class WeiboSource:
    """``SourceAdapter`` for ``SOURCE_KIND_WEIBO_API``."""

    def __init__(self, context: SourceContext) -> None:
        self._ctx = context

    def _queries(self, source: source_pb2.Source) -> list[tuple[str, dict[str, str | int]]]:
        config = source.weibo_api
        size = config.page_size or 50
        base = source.url if source.url.endswith("/") else source.url + "/"
        queries: list[tuple[str, dict[str, str | int]]] = [
            (base + "statuses/user_timeline.json", {"uid": uid, "count": size}) for uid in config.user_ids
        ]
        queries += [(base + "search/topics.json", {"q": keyword, "count": size}) for keyword in config.keywords]
        return queries

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        queries = self._queries(source)
        if not queries:
            return Outcome(error="weibo source has neither user_ids nor keywords")
        credentials: Credentials | None = None
        if source.weibo_api.token_secret_name:
            token = self._ctx.secret(source.weibo_api.token_secret_name)
            if not token:
                return Outcome(error=f"secret {source.weibo_api.token_secret_name!r} not found")
            # Bound to the API's origin: a redirect elsewhere does not carry the token.
            credentials = Credentials.for_url(source.url, {"Authorization": f"OAuth2 {token.strip()}"})
        # APIs are not crawled pages: robots.txt does not apply (Source.respect_robots_txt is for HTML and RSS).
        polite = Politeness.for_source(source)
        polite = Politeness(polite.max_attempts, False, polite.min_interval_s)
        failures: list[str] = []
        emitted = 0
        for url, params in queries:
            origin = f"{url}?{urlencode(params)}"
            body = b""
            try:
                response = await self._ctx.fetcher.get(url, params=params, credentials=credentials, politeness=polite)
                body = response.body
                items = parse_statuses(loads(response.text()), source, collected_at=self._ctx.now(), origin=origin)
            except FetchError as err:
                failures.append(str(err))
                reject = rejected_for_fetch_error(source, err, body)
                items = [reject] if reject is not None else []
            except ValueError as err:  # bad JSON or the wrong shape
                reason = post_pb2.DEAD_LETTER_REASON_MALFORMED
                failures.append(f"{origin}: {err}")
                items = [rejected(source, reason, f"not a statuses answer: {err}", body, origin)]
            emitted += await emit_all(emit, items, self._ctx.batch_size)
        if failures:
            summary = f"{len(failures)} of {len(queries)} queries failed, first: {failures[0]}"
            return Outcome(error=summary, emitted=emitted)
        return Outcome(emitted=emitted)
