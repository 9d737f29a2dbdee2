"""Leave the shared Kafka and Elasticsearch as a test found them: drop everything one run named from its prefix.

A test that starts whole processes (the e2e and browser suites) gives them names made from one unique prefix
(``qf-e2e-<hex>``): indices and aliases ``<prefix>-posts-000001`` / ``<prefix>-posts`` / ``<prefix>-posts-read``,
the index templates ``ensure_index`` puts (``<prefix>-posts``; it creates no ILM policy or data stream), topics
``<prefix>.posts`` and consumer groups ``<prefix>-grader``. ``drop_run`` deletes all of them after the processes
have stopped, tolerates pieces that were never created, and then checks that nothing with the prefix is left: it
raises ``AssertionError`` naming what remains, so a leak fails the test that caused it (a per-run check is reliable
while other engineers run tests on the same servers; a before/after diff of the whole cluster is not).

Loopback only: a server address that is not 127.0.0.1, ::1 or localhost is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest
from qingfeng.elastic import create_client
from qingfeng.settings import ElasticsearchSettings

# Every topic and consumer group each service reads or writes, named from a run's prefix (see ``suite_env``).
_TOPICS = {
    "collector": {"POSTS": "posts", "POSTS_DEADLETTER": "posts-deadletter", "DEADLETTER": "deadletter"},
    "grader": {"POSTS": "posts", "EVENTS": "events", "ALERTS": "alerts", "DEADLETTER": "deadletter"},
    "coordinator": {
        **{name.upper(): name for name in ("alerts", "events", "publications", "cases", "tasks", "audit")},
        "PUBLICATION_REQUESTS": "publication_requests",
        "DEADLETTER": "deadletter",
    },
    "publisher": {
        "REQUESTS": "publication_requests",
        "PUBLICATIONS": "publications",
        "DEADLETTER": "publications-deadletter",
    },
    "gateway": {},
}
_GROUP_SETTING = {
    "collector": "INDEXER__GROUP_ID",
    "grader": "CONSUMER__GROUP_ID",
    "coordinator": "CONSUMER__GROUP_ID",
    "publisher": "GROUP_ID",
}
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_GROUP_NOT_FOUND, _GROUP_NOT_EMPTY = 69, 68  # Kafka error codes a delete may meet and wait out or ignore


@dataclass(frozen=True)
class RunNames:
    """What exists on the servers under one prefix."""

    indices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        return "; ".join(f"{f.name}: {', '.join(getattr(self, f.name))}" for f in fields(self) if getattr(self, f.name))


def suite_env(service: str, prefix: str) -> dict[str, str]:
    """The ``QF_<SERVICE>_`` variables that put every topic, consumer group and index of ``service`` under ``prefix``.

    A process started with a default name instead would share the developer's ``qingfeng.*`` topics and groups
    (a test coordinator in group ``coordinator`` takes partitions of ``qingfeng.alerts.v1`` from the running one)
    and leave names ``drop_run`` cannot find."""
    env = {f"QF_{service.upper()}_ELASTICSEARCH__INDEX_PREFIX": prefix}
    env.update({f"QF_{service.upper()}_TOPICS__{key}": f"{prefix}.{name}" for key, name in _TOPICS[service].items()})
    if service in _GROUP_SETTING:
        env[f"QF_{service.upper()}_{_GROUP_SETTING[service]}"] = f"{prefix}-{service}"
    return env


def _check_prefix(prefix: str) -> None:
    # A short or production-looking prefix would match names the developer's own suite uses.
    if len(prefix) < 8 or prefix.startswith("qingfeng"):
        raise ValueError(f"refusing to drop names under {prefix!r}: not a per-run test prefix")


def _check_loopback(kafka_bootstrap: str, es_url: str) -> None:
    hosts = [server.strip().rpartition(":")[0].strip("[]") for server in kafka_bootstrap.split(",")]
    hosts.append(urlsplit(es_url).hostname or "")
    for host in hosts:
        if host not in _LOOPBACK:
            raise ValueError(f"refusing to touch {host!r}: tests talk to loopback only")


async def _es_names(es: Any, prefix: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    found = await es.indices.get(
        index=f"{prefix}*", expand_wildcards="all", allow_no_indices=True, ignore_unavailable=True
    )
    indices = tuple(sorted(found.body))
    aliases = tuple(
        sorted({a for body in found.body.values() for a in body.get("aliases", {}) if a.startswith(prefix)})
    )
    templates = await es.options(ignore_status=404).indices.get_index_template(name=f"{prefix}*")
    names = tuple(sorted(t["name"] for t in templates.body.get("index_templates", [])))
    return indices, aliases, names


async def _kafka_names(admin: AIOKafkaAdminClient, prefix: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    topics = tuple(sorted(t for t in await admin.list_topics() if t.startswith(prefix)))
    groups = tuple(sorted(g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(prefix)))
    return topics, groups


async def _delete_groups(admin: AIOKafkaAdminClient, groups: tuple[str, ...], wait_s: float) -> None:
    """Delete each group at its coordinator; a group still holding a member of a killed process is retried until
    the broker expires that member (its session timeout), at most ``wait_s``."""
    deadline = time.monotonic() + wait_s
    for group in groups:
        while True:
            node = await admin.find_coordinator(group)
            reply = await admin._send_request_to_node(node, DeleteGroupsRequest([group]))  # no public API in 0.14
            code = int(reply.results[0][1])
            if code != _GROUP_NOT_EMPTY or time.monotonic() > deadline:
                break  # deleted, already gone, or left for the final check to report
            await asyncio.sleep(1.0)
        if code not in (0, _GROUP_NOT_FOUND, _GROUP_NOT_EMPTY):
            raise AssertionError(f"deleting consumer group {group} failed with Kafka error {code}")


async def find_run(kafka_bootstrap: str, es_url: str, prefix: str) -> RunNames:
    """Every index, alias, index template, topic and consumer group whose name starts with ``prefix``."""
    _check_loopback(kafka_bootstrap, es_url)
    es = create_client(ElasticsearchSettings(url=es_url))
    try:
        indices, aliases, templates = await _es_names(es, prefix)
    finally:
        await es.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics, groups = await _kafka_names(admin, prefix)
    finally:
        await admin.close()
    return RunNames(indices, aliases, templates, topics, groups)


async def drop_run_async(kafka_bootstrap: str, es_url: str, prefix: str, *, wait_s: float = 45.0) -> RunNames:
    """Delete everything named from ``prefix`` (see the module docstring); what was found and deleted.

    Raises ``AssertionError`` naming what still exists ``wait_s`` later (Kafka deletes topics and expires a killed
    consumer's membership asynchronously, so the check polls)."""
    _check_prefix(prefix)
    found = await find_run(kafka_bootstrap, es_url, prefix)
    es = create_client(ElasticsearchSettings(url=es_url))
    try:
        if found.indices:  # aliases go with their indices; wildcard deletes are refused, so by name
            await es.options(ignore_status=404).indices.delete(index=list(found.indices), expand_wildcards="all")
        for template in found.templates:
            await es.options(ignore_status=404).indices.delete_index_template(name=template)
    finally:
        await es.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        if found.topics:
            await admin.delete_topics(list(found.topics))
        await _delete_groups(admin, found.groups, wait_s)
    finally:
        await admin.close()
    deadline = time.monotonic() + wait_s
    left = await find_run(kafka_bootstrap, es_url, prefix)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        if left.groups:  # a member of a killed process may have expired since
            await drop_groups_only(kafka_bootstrap, left.groups)
        left = await find_run(kafka_bootstrap, es_url, prefix)
    if left:
        raise AssertionError(f"test run {prefix} left names on the shared servers: {left.describe()}")
    return found


async def drop_groups_only(kafka_bootstrap: str, groups: tuple[str, ...]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await _delete_groups(admin, groups, wait_s=0)
    finally:
        await admin.close()


def drop_run(kafka_bootstrap: str, es_url: str, prefix: str, *, wait_s: float = 45.0) -> RunNames:
    """``drop_run_async`` from synchronous code, in a thread of its own (the caller may be inside an event loop,
    e.g. a sync fixture of an asyncio test module)."""
    result: list[RunNames] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(drop_run_async(kafka_bootstrap, es_url, prefix, wait_s=wait_s)))
        except BaseException as err:  # re-raised in the caller's thread
            error.append(err)

    thread = threading.Thread(target=run, name=f"drop-{prefix}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
