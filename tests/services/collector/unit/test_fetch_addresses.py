"""The address policy alone: which addresses count as non-public, how the allowlist reads, origins and credentials."""

from __future__ import annotations

import ipaddress

import pytest

from services.collector.fetch import AddressPolicy, Credentials, origin_of
from services.collector.fetch.addresses import classify
from services.collector.settings import CollectorSettings, FetchSettings


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata lives here)"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("100.64.0.1", "not globally routable"),
        ("192.0.2.1", "private"),
        ("255.255.255.255", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("::ffff:10.0.0.1", "private (embedded in ::ffff:a00:1)"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata lives here) (embedded in ::ffff:a9fe:a9fe)"),
        ("2002:7f00:1::", "loopback (embedded in 2002:7f00:1::)"),
        ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata lives here) (embedded in 64:ff9b::a9fe:a9fe)"),
    ],
)
def test_non_public_addresses(address: str, why: str) -> None:
    assert classify(ipaddress.ip_address(address)) == why
    refusal = AddressPolicy().refusal("example.test", ipaddress.ip_address(address))
    assert refusal == f"address example.test ({ipaddress.ip_address(address)}) is {why} and not allowlisted"


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None
    assert AddressPolicy().refusal("example.test", ipaddress.ip_address(address)) is None


def test_allowlist_by_network_and_by_name() -> None:
    policy = AddressPolicy.parse(["10.20.0.0/16", "::1", "Mastodon.Internal."])
    assert policy.refusal("x", ipaddress.ip_address("10.20.3.4")) is None
    assert policy.refusal("x", ipaddress.ip_address("::1")) is None
    assert policy.refusal("mastodon.internal", ipaddress.ip_address("10.99.0.1")) is None
    # Only what is listed: the neighbour network, IPv4 loopback and other names stay refused.
    assert (
        policy.refusal("x", ipaddress.ip_address("10.21.0.1")) == "address x (10.21.0.1) is private and not allowlisted"
    )
    assert policy.refusal("x", ipaddress.ip_address("127.0.0.1")) is not None
    assert policy.refusal("10.99.0.1", ipaddress.ip_address("10.99.0.1")) == (
        "address 10.99.0.1 is private and not allowlisted"
    )


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "", "1.2.3", "::g"])
def test_bad_allowlist_entries_are_errors(entry: str) -> None:
    with pytest.raises(ValueError):
        AddressPolicy.parse([entry])


def test_production_default_allowlist_is_empty() -> None:
    settings = CollectorSettings()
    assert settings.fetch.allow == ()
    assert settings.fetch.address_policy() == AddressPolicy()
    from_text = FetchSettings.model_validate({"allow": "127.0.0.1, localhost"})  # as the environment gives it
    assert from_text.address_policy() == AddressPolicy.parse(["127.0.0.1", "localhost"])


def test_environment_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QF_COLLECTOR_FETCH__ALLOW", "10.20.0.0/16,mastodon.internal")
    assert CollectorSettings().fetch.allow == ("10.20.0.0/16", "mastodon.internal")
    monkeypatch.setenv("QF_COLLECTOR_FETCH__ALLOW", "10.20.0.1/16")
    with pytest.raises(ValueError, match=r"10\.20\.0\.1/16"):
        CollectorSettings()


def test_origins_and_credentials() -> None:
    assert origin_of("https://Social.Example/api") == ("https", "social.example", 443)
    assert origin_of("http://a.test:8080/x") == ("http", "a.test", 8080)
    creds = Credentials.for_url("https://social.example", {"Authorization": "Bearer t"})
    assert creds.for_request("https://social.example:443/api/v1/x?max_id=1") == {"Authorization": "Bearer t"}
    for elsewhere in (
        "http://social.example/api",
        "https://social.example:8443/",
        "https://evil.example/",
        "http://[x",
    ):
        assert creds.for_request(elsewhere) == {}
