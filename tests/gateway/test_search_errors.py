"""Elasticsearch errors reach the caller on the right side and without the cluster's internals (unit: a stub
client raising what the real one raises)."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError, BadRequestError
from qingfeng.elastic import create_client
from qingfeng.settings import ElasticsearchSettings
from qingfeng.v1 import search_pb2, search_pb2_grpc

from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor
from gateway.ratelimit import RateLimiter
from gateway.search import Searcher, SearchFailed, SearchRequestError, SearchServicer, SearchUnavailable

# What a cluster says about a failed query: index names and analyser details a partner has no business seeing.
INTERNALS = "failed to create query: [qingfeng-posts-000001] field [text_simplified] analyser cjk_bigram"


def _meta(status: int) -> ApiResponseMeta:
    return ApiResponseMeta(
        status=status, http_version="1.1", headers=HttpHeaders(), duration=0.01, node=NodeConfig("http", "x", 9200)
    )


def _body(kind: str) -> dict[str, Any]:
    return {"error": {"root_cause": [{"type": kind, "reason": INTERNALS}]}, "status": 400}


class _FailingEs:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def search(self, **kwargs: Any) -> Any:
        raise self.error

    async def open_point_in_time(self, **kwargs: Any) -> Any:  # a post search's first call
        raise self.error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            BadRequestError("search_phase_execution_exception", _meta(400), _body("query_shard_exception")),
            SearchRequestError,
        ),
        (ConnectionError("connection refused to 127.0.0.1:19200"), SearchUnavailable),
        (
            ApiError("es_rejected_execution_exception", _meta(429), _body("es_rejected_execution_exception")),
            SearchUnavailable,
        ),
        (ApiError("unavailable", _meta(503), _body("cluster_block_exception")), SearchUnavailable),
        (ApiError("security_exception", _meta(401), _body("security_exception")), SearchFailed),
        (ApiError("index_not_found_exception", _meta(404), _body("index_not_found_exception")), SearchFailed),
    ],
)
async def test_errors_map_to_the_right_side_without_internals(
    error: Exception, expected: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    searcher = Searcher(_FailingEs(error), "qingfeng")  # type: ignore[arg-type]
    with pytest.raises(expected) as raised:
        await searcher.search_posts(search_pb2.SearchPostsRequest(query="受贿"))
    message = str(raised.value)
    assert "qingfeng-posts" not in message and "cjk_bigram" not in message and "19200" not in message
    assert "exception" not in message
    # Operators still learn the cause from the log.
    logged = [r.getMessage() for r in caplog.records if r.name == "gateway.search"]
    assert logged and ("cjk_bigram" in logged[0] or isinstance(error, ConnectionError))


async def test_search_cluster_down_is_unavailable_over_grpc(policy: AccessPolicy, tokens: dict[str, str]) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    es = create_client(ElasticsearchSettings(url=url, request_timeout_s=2.0))
    server = grpc.aio.server(interceptors=[GuardInterceptor(policy, RateLimiter(rate_per_s=10.0, burst=10))])
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(Searcher(es, "qingfeng")), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SearchPosts(
                    search_pb2.SearchPostsRequest(query="受贿"),
                    metadata=(("authorization", f"Bearer {tokens['office']}"),),
                    timeout=20,
                )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == "search cluster unavailable; retry later"
    finally:
        await server.stop(None)
        await es.close()
