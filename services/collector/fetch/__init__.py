"""Polite HTTP fetching for the collector's web sources: robots.txt, per-host limits, retries, size limit, charsets."""

from services.collector.fetch.charset import decode_body
from services.collector.fetch.client import DEFAULT_USER_AGENT, Fetcher, FetcherConfig, FetchResponse, Politeness
from services.collector.fetch.errors import (
    Disallowed,
    FetchError,
    HttpStatusError,
    TooLarge,
    TransportFailure,
    Undecodable,
)

__all__ = [
    "DEFAULT_USER_AGENT",
    "Disallowed",
    "FetchError",
    "FetchResponse",
    "Fetcher",
    "FetcherConfig",
    "HttpStatusError",
    "Politeness",
    "TooLarge",
    "TransportFailure",
    "Undecodable",
    "decode_body",
]
