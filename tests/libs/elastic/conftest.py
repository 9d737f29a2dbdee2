"""Fixtures for the Elasticsearch helper tests: a client on the local stack and a unique index prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import FAMILIES, IndexNames, create_client, delete_family
from qingfeng.settings import ElasticsearchSettings


@pytest.fixture
async def es(es_url: str) -> AsyncIterator[AsyncElasticsearch]:
    client = create_client(ElasticsearchSettings(url=es_url, request_timeout_s=30))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def prefix(es: AsyncElasticsearch) -> AsyncIterator[str]:
    """A prefix no other test uses; every index family under it is deleted afterwards."""
    value = f"qftest-{uuid.uuid4().hex[:10]}"
    yield value
    for family in FAMILIES:
        await delete_family(es, IndexNames(value, family))
