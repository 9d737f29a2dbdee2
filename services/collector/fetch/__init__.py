"""Polite HTTP fetching for the collector's web sources: robots.txt, per-host limits, retries, size limit, charsets."""

from services.collector.fetch.addresses import AddressPolicy
from services.collector.fetch.charset import decode_body
from services.collector.fetch.client import DEFAULT_USER_AGENT, Fetcher, FetcherConfig, FetchResponse, Politeness
from services.collector.fetch.errors import (
    Disallowed,
    FetchError,
    HttpStatusError,
    Refused,
    TooLarge,
    TransportFailure,
    Undecodable,
)
from services.collector.fetch.guard import AddressRefused, GuardedBackend, Resolver, SystemResolver
from services.collector.fetch.origin import Credentials, origin_of

__all__ = [
    "DEFAULT_USER_AGENT",
    "AddressPolicy",
    "AddressRefused",
    "Credentials",
    "Disallowed",
    "FetchError",
    "FetchResponse",
    "Fetcher",
    "FetcherConfig",
    "GuardedBackend",
    "HttpStatusError",
    "Politeness",
    "Refused",
    "Resolver",
    "SystemResolver",
    "TooLarge",
    "TransportFailure",
    "Undecodable",
    "decode_body",
    "origin_of",
]
