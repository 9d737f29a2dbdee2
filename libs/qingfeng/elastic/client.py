"""The Elasticsearch client built from settings, and the readiness check services report through gRPC health."""

from __future__ import annotations

from dataclasses import dataclass

from elastic_transport.client_utils import DEFAULT
from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from qingfeng.settings import ElasticsearchSettings

__all__ = ["ClusterHealth", "create_client", "health"]


@dataclass(frozen=True)
class ClusterHealth:
    """Whether the cluster can serve us: ``ok`` is True for green or yellow (yellow = replicas unassigned)."""

    ok: bool
    status: str
    cluster_name: str = ""
    version: str = ""
    detail: str = ""


def create_client(settings: ElasticsearchSettings) -> AsyncElasticsearch:
    """An ``AsyncElasticsearch`` for ``settings``; it connects lazily. Close it with ``await es.close()``."""
    basic_auth: tuple[str, str] | None = None
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password is not None else ""
        basic_auth = (settings.username, password)
    return AsyncElasticsearch(
        settings.url,
        basic_auth=basic_auth,
        # Unset means the client's own default (certifi's bundle).
        ca_certs=str(settings.ca_file) if settings.ca_file is not None else DEFAULT,
        request_timeout=settings.request_timeout_s,
        # The transport retries connection errors and timeouts on its own; 429/503 of bulk items are retried in
        # bulk.py with backoff, so no status is retried here.
        max_retries=3,
        retry_on_timeout=True,
    )


async def health(es: AsyncElasticsearch, *, timeout_s: float = 2.0) -> ClusterHealth:
    """Readiness: the cluster answers and is at least yellow. Never raises; ``detail`` says what went wrong."""
    try:
        fast = es.options(request_timeout=timeout_s, max_retries=0)
        body = (await fast.cluster.health()).body
        # Not ``GET /`` (es.info()): the integration-test distribution lacks the module that serves it.
        nodes = (await fast.nodes.info(node_id="_local", filter_path="nodes.*.version")).body
    except (ApiError, TransportError) as err:
        return ClusterHealth(ok=False, status="unreachable", detail=f"{type(err).__name__}: {err}")
    status = str(body.get("status", "unknown"))
    versions = sorted({str(n.get("version", "")) for n in (nodes.get("nodes") or {}).values()})
    return ClusterHealth(
        ok=status in ("green", "yellow"),
        status=status,
        cluster_name=str(body.get("cluster_name", "")),
        version=",".join(versions),
    )
