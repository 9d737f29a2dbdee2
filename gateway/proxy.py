"""Forward partner calls to the service that owns the method, without decoding them.

The gateway does not re-implement the services' APIs: for every method of every upstream service descriptor it
registers a pass-through handler (bytes in, bytes out) of the right arity, copies the caller's deadline and trace
context, and adds the authenticated identity as a short-lived credential signed by the gateway and bound to the one
upstream service and method called; services verify it (``qingfeng.rpc.auth``) and believe nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from qingfeng.rpc import CREDENTIAL_HEADER, CredentialSigner

from gateway.interceptors import current_identity

__all__ = ["identity_metadata", "proxy_handler"]

# How long a call waits for an upstream channel to become ready before answering UNAVAILABLE.
_READY_WAIT_S = 3.0
_FORWARDED_HEADERS = ("traceparent", "tracestate", "x-request-id")


def identity_metadata(
    context: grpc.aio.ServicerContext, signer: CredentialSigner, method: str
) -> list[tuple[str, str]]:
    """Metadata for the upstream call: a credential for the caller's identity plus trace headers it sent."""
    identity = current_identity.get()
    metadata: list[tuple[str, str]] = []
    if identity is not None:
        token = signer.mint(method, principal=identity.name, agency=identity.agency, roles=identity.roles)
        metadata.append((CREDENTIAL_HEADER, token))
    for key, value in context.invocation_metadata() or ():
        if key in _FORWARDED_HEADERS:
            metadata.append((key, value))
    return metadata


def _call_options(context: grpc.aio.ServicerContext, signer: CredentialSigner, method: str) -> dict[str, Any]:
    """The caller's deadline and identity for the upstream call."""
    remaining = context.time_remaining()
    return {
        "timeout": None if remaining is None else max(remaining, 0.0),
        "metadata": identity_metadata(context, signer, method),
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


def _method_handler(
    channel: grpc.aio.Channel, path: str, method: MethodDescriptor, signer: CredentialSigner
) -> grpc.RpcMethodHandler:
    client_stream, server_stream = method.client_streaming, method.server_streaming

    if not client_stream and not server_stream:
        call = channel.unary_unary(path)

        async def unary_unary(request: bytes, context: grpc.aio.ServicerContext) -> Any:
            await _ensure_ready(channel, context, path)
            try:
                upstream = call(request, **_call_options(context, signer, path))
                response = await upstream
                await _relay_trailing(context, upstream)
                return response
            except grpc.aio.AioRpcError as exc:
                await _relay_error(context, exc)

        return grpc.unary_unary_rpc_method_handler(unary_unary)
    if client_stream and not server_stream:
        call_su = channel.stream_unary(path)

        async def stream_unary(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
            await _ensure_ready(channel, context, path)
            try:
                upstream = call_su(requests, **_call_options(context, signer, path))
                response = await upstream
                await _relay_trailing(context, upstream)
                return response
            except grpc.aio.AioRpcError as exc:
                await _relay_error(context, exc)

        return grpc.stream_unary_rpc_method_handler(stream_unary)
    if server_stream and not client_stream:
        call_us = channel.unary_stream(path)

        async def unary_stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await _ensure_ready(channel, context, path)
            try:
                upstream = call_us(request, **_call_options(context, signer, path))
                async for item in upstream:
                    yield item
                await _relay_trailing(context, upstream)
            except grpc.aio.AioRpcError as exc:
                await _relay_error(context, exc)

        return grpc.unary_stream_rpc_method_handler(unary_stream)
    call_ss = channel.stream_stream(path)

    async def stream_stream(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await _ensure_ready(channel, context, path)
        try:
            upstream = call_ss(requests, **_call_options(context, signer, path))
            async for item in upstream:
                yield item
            await _relay_trailing(context, upstream)
        except grpc.aio.AioRpcError as exc:
            await _relay_error(context, exc)

    return grpc.stream_stream_rpc_method_handler(stream_stream)


def proxy_handler(
    upstreams: Mapping[ServiceDescriptor, grpc.aio.Channel], signer: CredentialSigner
) -> grpc.GenericRpcHandler:
    """One generic handler serving every method of every upstream service over its channel."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for service, channel in upstreams.items():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            handlers[path] = _method_handler(channel, path, method, signer)

    class _Proxy(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            return handlers.get(details.method)

    return _Proxy()
