"""Which addresses the collector may connect to: the public internet, plus what the operator allowlists.

A source URL is data a caller (or a feed, a redirect, a ``next`` link) controls. Without this rule a source could make
the collector fetch ``http://169.254.169.254/`` (cloud credentials), ``http://127.0.0.1:…`` (our own admin ports) or
anything on the internal network, and hand back the answer as posts. So every address a connection would go to is
checked here, after DNS resolution (a public-looking name can resolve to 10.0.0.1), before the connection is made.

Refused unless allowlisted: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10 …), link-local
(169.254/16 with the metadata service, fe80::/10), unspecified, multicast, reserved and documentation ranges, and IPv6
forms that embed such an IPv4 address (::ffff:10.0.0.1, 6to4, NAT64). In short: whatever is not globally routable.

The allowlist holds networks (``10.20.0.0/16``, ``127.0.0.1``) and exact host names (``mastodon.internal``); a name
on it may resolve to any address. Production's allowlist is empty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["AddressPolicy", "IPAddress", "IPNetwork", "classify"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4 or NAT64), None for a plain IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address ("loopback", "link-local" …), None when it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            why = classify(inner)
            return f"{why} (embedded in {ip})" if why else None
        if ip.scope_id:
            return "scoped IPv6"
    # Order matters only for the words: the most telling name first.
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata lives here)" if str(ip).startswith("169.254.") else "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """The public internet plus ``allow_networks`` and ``allow_hosts`` (lower-case names)."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressPolicy:
        """From allowlist entries: each a network/address (``10.0.0.0/8``, ``::1``) or a host name.

        Raises ValueError for an empty entry or a network with host bits set (``10.0.0.1/8``: a typo, not a wish).
        """
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                raise ValueError("an empty allowlist entry")
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=True))
            except ValueError as err:
                if "/" in entry or entry.replace(".", "").isdigit() or ":" in entry:
                    raise ValueError(f"allowlist entry {entry!r}: {err}") from None
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why a connection to ``ip`` (resolved from ``host``) is refused, None when it is permitted."""
        why = classify(ip)
        if why is None:
            return None
        if host.lower().rstrip(".") in self.allow_hosts:
            return None
        if any(ip.version == net.version and ip in net for net in self.allow_networks):
            return None
        try:
            literal = ipaddress.ip_address(host.strip("[]")) == ip
        except ValueError:
            literal = False
        shown = str(ip) if literal else f"{host} ({ip})"
        return f"address {shown} is {why} and not allowlisted"
