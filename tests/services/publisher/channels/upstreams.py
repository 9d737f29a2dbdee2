"""Local HTTP servers on 127.0.0.1 that follow the documented API subsets of the channels, with scripted failures.

Each keeps what it was sent and what it holds, so a test can assert how many items really exist upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.publisher.channels.webhook import verify_signature


@dataclass
class Scripted:
    """One answer a server gives instead of its normal behaviour."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Upstream:
    base: str = ""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    # Answers given instead of the normal ones, first in first out, for any path.
    script: list[Scripted] = field(default_factory=list)
    # Accept the next write, then drop the connection before answering (the answer is lost).
    drop_next_write: bool = False
    # Sleep this long before answering anything (for timeouts).
    delay_s: float = 0.0

    def app(self) -> web.Application:
        raise NotImplementedError

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type="application/json", headers=headers
    )


async def _common(upstream: Upstream, request: web.Request) -> web.Response | None:
    upstream.requests.append((request.method, request.path, dict(request.headers)))
    if upstream.delay_s:
        await asyncio.sleep(upstream.delay_s)
    if upstream.script:
        scripted = upstream.script.pop(0)
        return _json(scripted.status, scripted.body, scripted.headers)
    return None


def _drop(upstream: Upstream, request: web.Request, answer: web.Response) -> web.Response:
    if upstream.drop_next_write:
        upstream.drop_next_write = False
        assert request.transport is not None
        request.transport.close()
    return answer


# --- Mastodon -----------------------------------------------------------------------------------------------------


@dataclass
class FakeMastodon(Upstream):
    token: str = "mastodon-token"
    account_id: str = "108000000000000042"
    max_chars: int = 500
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(109_000_000_000_000_001))

    def app(self) -> web.Application:
        async def guard(request: web.Request) -> web.Response | None:
            if (early := await _common(self, request)) is not None:
                return early
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _json(401, {"error": "The access token is invalid"})
            return None

        def too_long(text: str) -> web.Response | None:
            if len(text) > self.max_chars:
                return _json(422, {"error": f"Validation failed: Text character limit of {self.max_chars} exceeded"})
            return None

        async def create(request: web.Request) -> web.Response:
            if (early := await guard(request)) is not None:
                return early
            form = await request.post()
            key = request.headers.get("Idempotency-Key")
            if key and key in self.keys:
                # Mastodon answers the status the first request with this key created.
                return _json(200, self.statuses[self.keys[key]])
            text = str(form.get("status", ""))
            if not text:
                return _json(422, {"error": "Validation failed: Text can't be blank"})
            if (refused := too_long(text)) is not None:
                return refused
            status_id = str(next(self.ids))
            status = {
                "id": status_id,
                "content": f"<p>{text}</p>",
                "text": text,
                "visibility": str(form.get("visibility", "public")),
                "language": str(form.get("language", "")),
                "url": f"{self.base}/@qingfeng/{status_id}",
                "uri": f"{self.base}/users/qingfeng/statuses/{status_id}",
                "edited_at": None,
            }
            self.statuses[status_id] = status
            if key:
                self.keys[key] = status_id
            return _drop(self, request, _json(200, status))

        async def edit(request: web.Request) -> web.Response:
            if (early := await guard(request)) is not None:
                return early
            status = self.statuses.get(request.match_info["id"])
            if status is None:
                return _json(404, {"error": "Record not found"})
            text = str((await request.post()).get("status", ""))
            if (refused := too_long(text)) is not None:
                return refused
            status.update(text=text, content=f"<p>{text}</p>", edited_at="2026-11-30T04:00:00.000Z")
            return _json(200, status)

        async def delete(request: web.Request) -> web.Response:
            if (early := await guard(request)) is not None:
                return early
            status = self.statuses.pop(request.match_info["id"], None)
            if status is None:
                return _json(404, {"error": "Record not found"})
            return _json(200, status)

        async def verify_credentials(request: web.Request) -> web.Response:
            if (early := await guard(request)) is not None:
                return early
            return _json(200, {"id": self.account_id, "username": "qingfeng", "acct": "qingfeng"})

        async def account_statuses(request: web.Request) -> web.Response:
            if (early := await guard(request)) is not None:
                return early
            if request.match_info["id"] != self.account_id:
                return _json(404, {"error": "Record not found"})
            limit = min(40, int(request.query.get("limit", "20")))
            newest_first = sorted(self.statuses.values(), key=lambda s: int(s["id"]), reverse=True)
            if "max_id" in request.query:
                newest_first = [s for s in newest_first if int(s["id"]) < int(request.query["max_id"])]
            return _json(200, newest_first[:limit])

        app = web.Application()
        app.router.add_get("/api/v1/accounts/verify_credentials", verify_credentials)
        app.router.add_get("/api/v1/accounts/{id}/statuses", account_statuses)
        app.router.add_post("/api/v1/statuses", create)
        app.router.add_put("/api/v1/statuses/{id}", edit)
        app.router.add_delete("/api/v1/statuses/{id}", delete)
        return app


# --- Weibo-style --------------------------------------------------------------------------------------------------


@dataclass
class FakeWeibo(Upstream):
    token: str = "weibo-token"
    uid: str = "5000001"
    max_chars: int = 2000
    # Newest last; the timeline answers newest first.
    statuses: list[dict[str, Any]] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(4_900_000_000_000_001))

    def add(self, text: str) -> dict[str, Any]:
        status_id = next(self.ids)
        status = {
            "id": status_id,
            "idstr": str(status_id),
            "text": text,
            "created_at": "Mon Nov 30 11:00:00 +0800 2026",
            "user": {"id": int(self.uid), "idstr": self.uid, "screen_name": "清风发布"},
        }
        self.statuses.append(status)
        return status

    def app(self) -> web.Application:
        def error(status: int, code: int, message: str, path: str) -> web.Response:
            return _json(status, {"error_code": code, "error": message, "request": path})

        async def share(request: web.Request) -> web.Response:
            if (early := await _common(self, request)) is not None:
                return early
            form = await request.post()
            if form.get("access_token") != self.token:
                return error(401, 21332, "invalid_access_token", request.path)
            text = str(form.get("status", ""))
            if len(text) > self.max_chars:
                return error(400, 20012, "Text too long, please input text less than 2000 characters!", request.path)
            if any(s["text"] == text for s in self.statuses):
                return error(400, 20019, "Repeat content!", request.path)
            return _drop(self, request, _json(200, self.add(text)))

        async def timeline(request: web.Request) -> web.Response:
            if (early := await _common(self, request)) is not None:
                return early
            if request.headers.get("Authorization") != f"OAuth2 {self.token}":
                return error(401, 21332, "invalid_access_token", request.path)
            count = int(request.query.get("count", "20"))
            page = int(request.query.get("page", "1"))
            newest_first = list(reversed(self.statuses))
            chunk = newest_first[(page - 1) * count : page * count]
            return _json(200, {"statuses": chunk, "total_number": len(self.statuses)})

        async def destroy(request: web.Request) -> web.Response:
            if (early := await _common(self, request)) is not None:
                return early
            form = await request.post()
            if form.get("access_token") != self.token:
                return error(401, 21332, "invalid_access_token", request.path)
            for index, status in enumerate(self.statuses):
                if status["idstr"] == form.get("id"):
                    del self.statuses[index]
                    return _json(200, status)
            return error(400, 20101, "Target weibo does not exist!", request.path)

        app = web.Application()
        app.router.add_post("/2/statuses/share.json", share)
        app.router.add_get("/2/statuses/user_timeline.json", timeline)
        app.router.add_post("/2/statuses/destroy.json", destroy)
        return app


# --- webhook receiver ---------------------------------------------------------------------------------------------


@dataclass
class WebhookReceiver(Upstream):
    """A receiver that does what the webhook's documentation asks: verify, refuse with 401, deduplicate on the key."""

    secret: bytes = b""
    processed: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: int = 0

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.Response:
            if (early := await _common(self, request)) is not None:
                return early
            raw = await request.read()
            if not verify_signature(self.secret, dict(request.headers), raw):
                self.refused += 1
                return _json(401, {"error": "bad signature"})
            key = request.headers["Idempotency-Key"]
            if key not in self.processed:
                self.processed[key] = json.loads(raw)
            return _json(200, {"id": f"rx-{key}", "url": f"{self.base}/items/{key}"})

        app = web.Application()
        app.router.add_post("/hooks/qingfeng", hook)
        return app


@asynccontextmanager
async def serving(upstream: Upstream) -> AsyncIterator[str]:
    """Serve ``upstream`` on 127.0.0.1 at a free port; yields (and sets) its base URL."""
    runner = web.AppRunner(upstream.app(), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    upstream.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    await web.SockSite(runner, sock).start()
    try:
        yield upstream.base
    finally:
        await runner.cleanup()
        sock.close()
