"""Forward partner calls to the service that owns the method, without decoding them.

The gateway does not re-implement the services' APIs: for every method of every upstream service descriptor it
registers a pass-through handler (bytes in, bytes out) of the right arity, copies the caller's deadline and trace
context, and adds the authenticated identity as a short-lived credential signed by the gateway and bound to the one
upstream service and method called; services verify it (``qingfeng.rpc.auth``) and believe nothing else.

Limits at the edge:

- every upstream call has a deadline: the caller's, or ``default_timeout_s`` when the caller set none;
- every request message (each item of a stream too) is at most ``max_request_bytes`` long, or the method's own
  limit in ``method_max_request_bytes``: a larger one is RESOURCE_EXHAUSTED before anything is sent upstream;
- every request message decodes as its method's input type and keeps the rules the protos declare
  (``validation.py``), or it is INVALID_ARGUMENT with a ``google.rpc.BadRequest`` naming each field;
- every item of a client stream (``ImportPosts``) is counted against the caller's stream-item rate limit (a bucket
  per identity apart from the one for calls: an import of thousands of posts is one call but many items; a batch
  message, ``jsonl_lines``, counts each of its lines, ``validation.items_of``). The proxy
  reads one item, waits for a token (at most ``stream_item_wait_s``), writes it upstream and waits until the
  upstream took it before reading the next, so a stream holds one message in memory and HTTP/2 flow control slows
  the sender down; an identity whose streams together still outrun the rate gets RESOURCE_EXHAUSTED and the
  upstream call is cancelled.

A client stream is forwarded by writing to the upstream call from the handler's own task (never by handing the
upstream call our request iterator): when the upstream aborts mid-stream, the partner then gets the upstream's code
and message instead of INTERNAL. When a client stream fails while the partner is still sending (the upstream
refused it, or an item broke a limit), the gateway first reads and drops the rest of the partner's stream, for at
most ``_DRAIN_S`` and ``_DRAIN_BYTES``, and only then answers: grpc.aio's client (and others like it) turns a send
that fails because the status arrived into INTERNAL "Internal error from Core", overwriting the real status, so a
partner that is still writing when the answer comes would otherwise see INTERNAL now and then.

Client streams go over ``stream_upstreams`` (channels without client interceptors) when given: OpenTelemetry's
asyncio client interceptor waits for a client stream's status before handing out the call, so writing to an
intercepted call would wait for ever. Tracing is skipped for those calls and the gateway's own span context is
injected into their metadata instead, so the trace still continues.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc._cython import cygrpc
from opentelemetry import propagate
from opentelemetry.instrumentation.utils import suppress_instrumentation
from qingfeng.errors import InvalidArgument
from qingfeng.rpc import CREDENTIAL_HEADER, CredentialSigner
from qingfeng.rpc.errors import abort

from gateway.interceptors import current_identity
from gateway.ratelimit import RateLimiter
from gateway.validation import request_checker

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_TIMEOUT_S", "identity_metadata", "proxy_handler"]

# How long a call waits for an upstream channel to become ready before answering UNAVAILABLE.
_READY_WAIT_S = 3.0
_FORWARDED_HEADERS = ("traceparent", "tracestate", "x-request-id")
DEFAULT_TIMEOUT_S = 30.0
# A partner's request (or stream item) is a filter, an id or one post: half a megabyte is generous.
DEFAULT_MAX_REQUEST_BYTES = 512 * 1024
# How much of a failed client stream's remainder the gateway reads (and drops) before answering (see above): enough
# for an import of a few thousand posts; a longer stream gets its answer without waiting for the rest.
_DRAIN_S = 2.0
_DRAIN_BYTES = 8 * 1024 * 1024


_CORE_ERRORS: tuple[type[BaseException], ...] = (
    getattr(cygrpc, "InternalError", RuntimeError),
    asyncio.InvalidStateError,
)


class _StreamLimited(Exception):
    """The caller's stream outran its rate limit."""


class _TooLarge(Exception):
    """A request message is larger than the method allows."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"request message of {size} bytes is larger than the {limit} bytes this method accepts")


def identity_metadata(
    context: grpc.aio.ServicerContext, signer: CredentialSigner, method: str, *, own_trace: bool = False
) -> list[tuple[str, str]]:
    """Metadata for the upstream call: a credential for the caller's identity plus trace headers it sent (or, with
    ``own_trace``, the gateway's current span context in their place)."""
    identity = current_identity.get()
    metadata: list[tuple[str, str]] = []
    if identity is not None:
        token = signer.mint(method, principal=identity.name, agency=identity.agency, roles=identity.roles)
        metadata.append((CREDENTIAL_HEADER, token))
    carrier: dict[str, str] = {}
    if own_trace:
        propagate.inject(carrier)
    for key, value in context.invocation_metadata() or ():
        if key in _FORWARDED_HEADERS and key not in carrier:
            metadata.append((key, value))
    metadata.extend((key, value) for key, value in carrier.items() if key in _FORWARDED_HEADERS)
    return metadata


def _call_options(
    context: grpc.aio.ServicerContext,
    signer: CredentialSigner,
    method: str,
    default_timeout_s: float,
    *,
    own_trace: bool = False,
) -> dict[str, Any]:
    """The caller's deadline (or the default) and identity for the upstream call."""
    remaining = context.time_remaining()
    return {
        "timeout": default_timeout_s if remaining is None else max(remaining, 0.0),
        "metadata": identity_metadata(context, signer, method, own_trace=own_trace),
    }


async def _ensure_ready(channel: grpc.aio.Channel, context: grpc.aio.ServicerContext, path: str) -> None:
    """Give an upstream that is (re)connecting a moment before calling it; UNAVAILABLE when it does not come.

    A fresh gateway, or one whose upstream just restarted, holds a channel in connect backoff: a call made then
    fails at once (and a client stream can fail as INTERNAL). Waiting briefly for READY turns that race into a
    short delay, while a dead upstream still answers UNAVAILABLE well within the caller's deadline.
    """
    if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
        return
    remaining = context.time_remaining()
    wait_s = _READY_WAIT_S if remaining is None else min(_READY_WAIT_S, remaining / 2)
    try:
        await asyncio.wait_for(channel.channel_ready(), wait_s)
    except TimeoutError:
        service = path.split("/")[1]
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{service} is not reachable from the gateway; retry later")


async def _relay_error(context: grpc.aio.ServicerContext, exc: grpc.aio.AioRpcError) -> None:
    trailing = exc.trailing_metadata()
    if trailing:
        context.set_trailing_metadata(tuple(trailing))
    await context.abort(exc.code(), exc.details() or "")


async def _relay_trailing(context: grpc.aio.ServicerContext, call: Any) -> None:
    """Pass the upstream's trailing metadata of a successful call back to the caller (errors: ``_relay_error``)."""
    trailing = await call.trailing_metadata()
    if trailing:
        context.set_trailing_metadata(tuple(trailing))


async def _drain(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
    """Read and drop what the caller still sends, until it half-closes or ``_DRAIN_S`` / ``_DRAIN_BYTES`` (or its
    deadline) run out, so its last send does not fail under the answer (see the module's docstring)."""
    remaining = context.time_remaining()
    wait_s = _DRAIN_S if remaining is None else min(_DRAIN_S, remaining)
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            async for item in requests:
                drained += len(item)
                if drained > _DRAIN_BYTES:
                    return


@contextlib.asynccontextmanager
async def _relaying(
    context: grpc.aio.ServicerContext, requests: AsyncIterator[bytes] | None = None, upstream: Any = None
) -> AsyncIterator[None]:
    """Turn an upstream failure into the same status for the caller; a stream over its limit into
    RESOURCE_EXHAUSTED. For a client stream (the caller's ``requests`` and the ``upstream`` call they go to), the
    upstream call is cancelled and the rest of ``requests`` drained before the error is answered."""
    try:
        yield
    except (grpc.aio.AioRpcError, _StreamLimited, _TooLarge, InvalidArgument) as exc:
        if upstream is not None:
            upstream.cancel()  # no-op when it ended (it gave this error); else it need not wait for the drain
        if requests is not None:
            await _drain(requests, context)
        await _answer_error(context, exc)


async def _answer_error(
    context: grpc.aio.ServicerContext, exc: grpc.aio.AioRpcError | _StreamLimited | _TooLarge | InvalidArgument
) -> None:
    if isinstance(exc, grpc.aio.AioRpcError):
        await _relay_error(context, exc)
    elif isinstance(exc, _StreamLimited):
        identity = current_identity.get()
        who = identity.name if identity is not None else "caller"
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit exceeded for {who} within the stream")
    elif isinstance(exc, _TooLarge):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    else:  # InvalidArgument: the request breaks the contract's rules (gateway/validation.py)
        await abort(context, exc)


# Checks one request message and returns how many items it carries (a batch of lines counts its lines).
Check = Callable[[bytes], int]


def _checker(limit: int, validate: Check) -> Check:
    """Size first (cheap, and nothing oversized is decoded), then the contract's rules."""

    def check(request: bytes) -> int:
        if len(request) > limit:
            raise _TooLarge(len(request), limit)
        return validate(request)

    return check


class _Forwarder:
    """Writes the caller's stream to an upstream call, one rate-limited item at a time."""

    def __init__(self, limiter: RateLimiter | None, max_wait_s: float) -> None:
        self._limiter = limiter
        self._max_wait_s = max_wait_s

    async def _pace(self, items: int) -> None:
        identity = current_identity.get()
        if self._limiter is None or identity is None:
            return
        wait_s = self._limiter.reserve(identity.name, self._max_wait_s, items)
        if wait_s is None:
            raise _StreamLimited
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def forward(self, requests: AsyncIterator[bytes], upstream: Any, check: Check) -> None:
        """Copy ``requests`` to ``upstream`` (a streaming call) and half-close it; stop early if it has ended."""
        async for item in requests:
            # A batch (ImportPosts' jsonl_lines) takes a token per line: it is paced as its lines one by one.
            await self._pace(check(item))
            if upstream.done():
                return  # its status (an error) is what the caller gets
            if not await _write(upstream, item):
                return  # the upstream finished: its own status is what awaiting the call raises
        if not upstream.done():
            with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
                await upstream.done_writing()


async def _write(upstream: Any, item: bytes) -> bool:
    """Send one message upstream; False when the upstream call has already finished.

    grpc.aio's public ``write`` has a flaw here: when the upstream's status is already on its way, the failed send
    overwrites that status with INTERNAL "Internal error from Core", so a partner would see INTERNAL instead of the
    upstream's NOT_FOUND. The same steps without that overwrite keep the real status; when the call's internals are
    not what this grpc version has, the public ``write`` is used (and the flaw is back, but nothing breaks).
    """
    if upstream.done():
        return False
    cython_call = getattr(upstream, "_cython_call", None)
    metadata_sent = getattr(upstream, "_metadata_sent", None)
    if cython_call is None or not isinstance(metadata_sent, asyncio.Event):
        try:
            await upstream.write(item)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            return False
        return True
    await metadata_sent.wait()
    if upstream.done():
        return False
    try:
        await cython_call.send_serialized_message(item)
    except _CORE_ERRORS:
        return False
    return True


def _method_handler(
    channel: grpc.aio.Channel,
    path: str,
    method: MethodDescriptor,
    signer: CredentialSigner,
    *,
    forwarder: _Forwarder,
    default_timeout_s: float,
    check: Check,
    stream_channel: grpc.aio.Channel,
) -> grpc.RpcMethodHandler:
    client_stream, server_stream = method.client_streaming, method.server_streaming

    def options(context: grpc.aio.ServicerContext) -> dict[str, Any]:
        return _call_options(context, signer, path, default_timeout_s)

    def open_stream(multicallable: Any, context: grpc.aio.ServicerContext) -> Any:
        """A client-streaming upstream call to write to, with tracing interceptors stepping aside (see above)."""
        opts = _call_options(context, signer, path, default_timeout_s, own_trace=True)
        with suppress_instrumentation():
            return multicallable(**opts)

    if not client_stream and not server_stream:
        call = channel.unary_unary(path)

        async def unary_unary(request: bytes, context: grpc.aio.ServicerContext) -> Any:
            async with _relaying(context):
                check(request)
                await _ensure_ready(channel, context, path)
                upstream = call(request, **options(context))
                response = await upstream
                await _relay_trailing(context, upstream)
                return response

        return grpc.unary_unary_rpc_method_handler(unary_unary)
    if client_stream and not server_stream:
        call_su = stream_channel.stream_unary(path)

        async def stream_unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
            await _ensure_ready(stream_channel, context, path)
            upstream = open_stream(call_su, context)
            try:
                async with _relaying(context, requests, upstream):
                    await forwarder.forward(requests, upstream, check)
                    response = await upstream
                    await _relay_trailing(context, upstream)
                    return response
            finally:
                upstream.cancel()  # no-op once finished; stops the upstream when we gave up first

        return grpc.stream_unary_rpc_method_handler(stream_unary)
    if server_stream and not client_stream:
        call_us = channel.unary_stream(path)

        async def unary_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with _relaying(context):
                check(request)
                await _ensure_ready(channel, context, path)
                upstream = call_us(request, **options(context))
                async for item in upstream:
                    yield item
                await _relay_trailing(context, upstream)

        return grpc.unary_stream_rpc_method_handler(unary_stream)
    call_ss = stream_channel.stream_stream(path)

    async def stream_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await _ensure_ready(stream_channel, context, path)
        upstream = open_stream(call_ss, context)
        writer = asyncio.create_task(forwarder.forward(requests, upstream, check))
        try:
            async with _relaying(context):
                async for item in upstream:
                    yield item
                await writer  # a stream that outran its limit surfaces here
                await _relay_trailing(context, upstream)
        finally:
            writer.cancel()
            upstream.cancel()

    return grpc.stream_stream_rpc_method_handler(stream_stream)


def proxy_handler(
    upstreams: Mapping[ServiceDescriptor, grpc.aio.Channel],
    signer: CredentialSigner,
    *,
    item_limiter: RateLimiter | None = None,
    default_timeout_s: float = DEFAULT_TIMEOUT_S,
    stream_item_wait_s: float = 1.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    method_max_request_bytes: Mapping[str, int] | None = None,
    stream_upstreams: Mapping[ServiceDescriptor, grpc.aio.Channel] | None = None,
) -> grpc.GenericRpcHandler:
    """One generic handler serving every method of every upstream service over its channel.

    ``item_limiter`` counts every item of a client stream per identity; an item waits at most
    ``stream_item_wait_s`` for its token. ``default_timeout_s`` is the deadline of an upstream call whose caller
    set none. ``method_max_request_bytes`` (full method path -> bytes) overrides ``max_request_bytes`` per method.
    ``stream_upstreams`` are channels to the same services without client interceptors, for client streams.
    """
    forwarder = _Forwarder(item_limiter, stream_item_wait_s)
    per_method = dict(method_max_request_bytes or {})
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for service, channel in upstreams.items():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            handlers[path] = _method_handler(
                channel,
                path,
                method,
                signer,
                forwarder=forwarder,
                default_timeout_s=default_timeout_s,
                check=_checker(per_method.get(path, max_request_bytes), request_checker(method.input_type)),
                stream_channel=(stream_upstreams or {}).get(service, channel),
            )

    class _Proxy(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            return handlers.get(details.method)

    return _Proxy()
