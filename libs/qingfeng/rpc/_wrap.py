"""Wrap a gRPC method handler so that code runs around it in the handler's own context, whatever its arity.

Both the gateway's guard and the services' credential check need this: abort before the handler runs, or set a
context variable (the caller) for exactly the handler's duration and report the final status afterwards.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

__all__ = ["wrap_handler"]

Enter = Callable[[], Callable[[], None]]
# Computes, inside the call (so it can read the peer and its TLS certificate), whether to refuse it.
Check = Callable[[grpc.aio.ServicerContext], "tuple[grpc.StatusCode, str] | None"]


def _final_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def wrap_handler(
    handler: grpc.RpcMethodHandler,
    *,
    abort: tuple[grpc.StatusCode, str] | None,
    enter: Enter,
    on_done: Callable[[grpc.StatusCode], None] = lambda code: None,
    check: Check | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same arity that aborts with ``abort``, or runs ``handler`` between ``enter()`` and its exit.

    ``enter`` is called inside the call's context and returns the function that undoes it. ``check``, when given,
    runs at call time with the call's context (after ``abort`` was found None) and may refuse the call the same way.
    """

    def _refusal(context: grpc.aio.ServicerContext) -> tuple[grpc.StatusCode, str] | None:
        if abort is not None:
            return abort
        return check(context) if check is not None else None

    async def _run_unary(behaviour: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        refused = _refusal(context)
        if refused is not None:
            on_done(refused[0])
            await context.abort(refused[0], refused[1])
        leave = enter()
        code = grpc.StatusCode.OK
        try:
            result = behaviour(request, context)
            return await result if inspect.isawaitable(result) else result
        except BaseException:
            code = _final_code(context)
            raise
        finally:
            leave()
            on_done(code)

    async def _run_stream(behaviour: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        refused = _refusal(context)
        if refused is not None:
            on_done(refused[0])
            await context.abort(refused[0], refused[1])
        leave = enter()
        code = grpc.StatusCode.OK
        try:
            items = behaviour(request, context)
            if hasattr(items, "__aiter__"):
                async for item in items:
                    yield item
            else:
                for item in items:
                    yield item
        except BaseException:
            code = _final_code(context)
            raise
        finally:
            leave()
            on_done(code)

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    # grpc.aio awaits a handler only if it is a coroutine function (or iterates it if it is an async generator
    # function); a lambda returning a coroutine would be run as a sync handler, so each arity gets a real one.
    if handler.unary_unary or handler.stream_unary:
        inner_unary = handler.unary_unary or handler.stream_unary

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await _run_unary(inner_unary, request, context)

        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary_response, **kwargs)
    inner_stream = handler.unary_stream or handler.stream_stream

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for item in _run_stream(inner_stream, request, context):
            yield item

    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(stream_response, **kwargs)
