"""Prometheus metrics of a process, served as ``/metrics`` on a loopback port when one is configured.

Metrics live in ``prometheus_client``'s default registry, so any module may register its own; this module owns the
HTTP listener and the metrics the shared kernel keeps for every process:

- ``qingfeng_kafka_consumer_lag{group, topic, partition}``: records not yet committed by a consumer group of this
  process (end offset − committed offset), kept by ``ConsumerLag`` for every ``run_batches`` consumer. It is the
  process's own view: when the process is down or stuck, ``qingfeng status`` reads the lag from Kafka instead.
- ``qingfeng_kafka_producer_renewed_total``: idempotent producers replaced after a fatal sequence error.

    port = serve_metrics(settings.metrics_port)   # None: no listener; 0: any free port (tests)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, start_http_server

__all__ = ["CONSUMER_LAG", "PRODUCER_RENEWED", "ConsumerLag", "serve_metrics"]

_log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "qingfeng_kafka_consumer_lag",
    "Records of a partition not yet committed by the consumer group (end offset - committed offset)",
    ["group", "topic", "partition"],
)
PRODUCER_RENEWED = Counter(
    "qingfeng_kafka_producer_renewed",
    "Idempotent producers closed and replaced after a fatal error (out-of-order sequence, unknown producer id)",
)

_served: dict[tuple[str, int], int] = {}
_serve_lock = threading.Lock()


def serve_metrics(port: int | None, *, host: str = "127.0.0.1") -> int | None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (once per address); the bound port, or None if off.

    The listener is loopback by default: the metrics say how far behind the suite is, which is nobody's business
    outside the deployment (a scraper runs beside the process, or the port is forwarded deliberately).
    """
    if port is None:
        return None
    with _serve_lock:
        if port != 0 and (host, port) in _served:
            return _served[(host, port)]
        server, _ = start_http_server(port, addr=host)
        bound = int(server.server_port)
        _served[(host, port)] = bound
        _log.info("metrics served on http://%s:%d/metrics", host, bound)
        return bound


class _TopicPartition(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class _Consumer(Protocol):
    """What ``ConsumerLag`` reads of an ``AIOKafkaConsumer``."""

    def assignment(self) -> Any: ...

    def highwater(self, partition: Any) -> int | None: ...


class ConsumerLag:
    """The lag gauge of one consumer group in this process: end offset (highwater) − last committed offset.

    The runner tells it the committed offsets it starts from (on assignment) and each commit; the highwater comes
    from the consumer's own fetch responses, so observing costs no request.
    """

    def __init__(self, group_id: str) -> None:
        self._group = group_id
        self._committed: dict[_TopicPartition, int] = {}

    def committed(self, offsets: Mapping[Any, int]) -> None:
        """Offsets committed (or found committed at assignment): the next record each partition will read."""
        self._committed.update(offsets)

    def revoked(self, partitions: Iterable[Any]) -> None:
        """Partitions another member owns now: their lag is no longer this process's to report."""
        for tp in partitions:
            self._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self._group, tp.topic, str(tp.partition))

    def observe(self, consumer: _Consumer) -> None:
        """Set the gauge of every assigned partition whose end and committed offsets are known."""
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            done = self._committed.get(tp)
            if end is None or done is None:
                continue
            CONSUMER_LAG.labels(self._group, tp.topic, str(tp.partition)).set(max(0, end - done))

    def value(self, topic: str, partition: int) -> float | None:
        """The gauge's current value for one partition (None when not reported)."""
        for metric in CONSUMER_LAG.collect():
            for sample in metric.samples:
                labels = sample.labels
                if (labels["group"], labels["topic"], labels["partition"]) == (self._group, topic, str(partition)):
                    return float(sample.value)
        return None
