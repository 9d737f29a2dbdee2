"""Posts on Kafka -> the grader -> alerts and event snapshots on Kafka, events in Elasticsearch, dead letters.

Real Kafka and Elasticsearch (``qingfeng stack up``); topics, index and database are the test's own.
"""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import IndexNames
from qingfeng.kafka import CONTENT_TYPE, EVENT_ID, EVENT_TYPE, Producer
from qingfeng.v1 import common_pb2, event_pb2, post_pb2, search_pb2

from gateway.search import Searcher
from services.grader.adapters.kafka import ALERT_EVENT_TYPE
from tests.services.grader.integration.conftest import MakeSettings, Running
from tests.services.grader.integration.helpers import produce_posts, read_topic, synthetic_stream

pytestmark = pytest.mark.integration

W = common_pb2.WarningLevel


async def test_stream_yields_alerts_events_and_dead_letters(make_settings: MakeSettings) -> None:
    settings = make_settings()
    stream = synthetic_stream()
    running = await Running.start(settings)
    producer = Producer(settings.kafka)
    await producer.start()
    raw = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await raw.start()
    try:
        await produce_posts(producer, settings.topics.posts, stream[:100])
        # Two records the grader cannot use, in the middle of the stream: they must not stop it.
        await raw.send_and_wait(settings.topics.posts, b"\x0a\x05ab", key=b"garbage")
        timeless = post_pb2.Post(id="jsonl:synthetic:timeless", text="没有时间")
        headers = [(CONTENT_TYPE, b"application/x-protobuf; proto=qingfeng.v1.Post")]
        await raw.send_and_wait(settings.topics.posts, timeless.SerializeToString(), key=b"timeless", headers=headers)
        await produce_posts(producer, settings.topics.posts, stream[100:])
        await running.wait_posts(len(stream))
    finally:
        await raw.stop()
        await producer.stop()
        await running.graceful()

    records = await read_topic(settings.kafka, settings.topics.alerts)
    alerts = [event_pb2.Alert.FromString(value) for _, value, _ in records]
    assert alerts, "no alerts"
    for key, value, headers in records:
        alert = event_pb2.Alert.FromString(value)
        assert key == alert.event_id
        assert headers[EVENT_TYPE] == ALERT_EVENT_TYPE.encode()
        assert headers[EVENT_ID] == alert.id.encode() == f"{alert.event_id}:{alert.sequence}".encode()
        assert alert.reasons and all(r.message for r in alert.reasons), alert
        assert alert.grade.level == alert.to_level
    assert len({a.id for a in alerts}) == len(alerts), "an alert was published twice"
    by_event: dict[str, list[event_pb2.Alert]] = {}
    for a in sorted(alerts, key=lambda a: a.sequence):
        by_event.setdefault(a.event_id, []).append(a)
    for event_alerts in by_event.values():
        assert [a.sequence for a in event_alerts] == list(range(1, len(event_alerts) + 1))
    peaks = {eid: max(a.to_level for a in al) for eid, al in by_event.items()}
    first = {p.id for p in stream}
    assert peaks[f"ev-{stream[0].id}"] == W.WARNING_LEVEL_BLUE  # the trickle
    assert Counter(peaks.values())[W.WARNING_LEVEL_RED] == 1
    assert Counter(peaks.values())[W.WARNING_LEVEL_ORANGE] >= 1
    red = next(eid for eid, level in peaks.items() if level == W.WARNING_LEVEL_RED)
    red_alerts = by_event[red]
    to_red = next(a for a in red_alerts if a.to_level == W.WARNING_LEVEL_RED)
    assert {"offline_risk", "distinct_authors"} <= {r.criterion for r in to_red.reasons}
    # The red event cools down once the offline talk left the 1-hour window and the cool-down passed.
    assert red_alerts[-1].to_level < W.WARNING_LEVEL_RED, [(a.from_level, a.to_level) for a in red_alerts]
    assert all(eid.removeprefix("ev-") in first for eid in by_event)

    # Event snapshots on the compacted topic, keyed by event id.
    snapshots = [event_pb2.Event.FromString(v) for _, v, _ in await read_topic(settings.kafka, settings.topics.events)]
    assert {e.id for e in snapshots} >= set(by_event)

    # Dead letters, with their reasons.
    letters = [
        post_pb2.DeadLetter.FromString(v) for _, v, _ in await read_topic(settings.kafka, settings.topics.deadletter)
    ]
    reasons = {letter.key: letter.reason for letter in letters}
    assert reasons == {
        "garbage": post_pb2.DEAD_LETTER_REASON_UNDECODABLE,
        "timeless": post_pb2.DEAD_LETTER_REASON_INVALID,
    }

    # The console's event search reads the documents back.
    es = AsyncElasticsearch(settings.elasticsearch.url)
    try:
        names = IndexNames(settings.elasticsearch.index_prefix, "events")
        await es.indices.refresh(index=names.read_alias)
        searcher = Searcher(es, settings.elasticsearch.index_prefix)
        found = await searcher.search_events(
            search_pb2.SearchEventsRequest(filter=search_pb2.EventFilter(min_level=W.WARNING_LEVEL_ORANGE))
        )
        hits = {h.event.id: h.event for h in found.hits}
        orange_or_more = {eid for eid, level in peaks.items() if level >= W.WARNING_LEVEL_ORANGE}
        final = {e.id: e for e in snapshots}  # the last snapshot per event wins on the compacted topic
        for e in snapshots:
            if e.version > final[e.id].version:
                final[e.id] = e
        assert set(hits) == {eid for eid in orange_or_more if final[eid].level >= W.WARNING_LEVEL_ORANGE}
        for eid, event in hits.items():
            assert event.level == final[eid].level
            assert event.grade.reasons and event.grade.policy_version == "four-level.v4"
            assert event.metrics and event.title
        text = await searcher.search_events(search_pb2.SearchEventsRequest(query="征地补偿"))
        assert red in {h.event.id for h in text.hits}
    finally:
        await es.close()
