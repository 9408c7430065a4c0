"""Who sent a request: the TCP peer, or the right-most untrusted X-Forwarded-For hop.

`X-Forwarded-For` is only believed when the TCP peer is a configured trusted proxy; then the hops
are read from the right, skipping trusted proxies, and the first untrusted hop is the client
(anything left of it could have been written by the client itself). IPv4-mapped IPv6 addresses
(`::ffff:1.2.3.4`) are read as the IPv4 address they carry.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """An address from a peer tuple or a forwarded hop; None when it is not an IP address."""
    cleaned = text.strip()
    if cleaned.startswith("[") and "]" in cleaned:
        cleaned = cleaned[1 : cleaned.index("]")]
    elif cleaned.count(":") == 1 and "." in cleaned:
        cleaned = cleaned.split(":", 1)[0]
    if "%" in cleaned:
        cleaned = cleaned.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(cleaned)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkSet:
    """Addresses and networks, with single addresses checked by a set look-up."""

    __slots__ = ("_exact", "_wide")

    def __init__(self, networks: Iterable[Network]) -> None:
        listed = tuple(networks)
        self._exact = frozenset(n.network_address for n in listed if n.num_addresses == 1)
        self._wide = tuple(n for n in listed if n.num_addresses > 1)

    def __contains__(self, address: object) -> bool:
        if address in self._exact:
            return True
        return any(
            isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
            and address.version == net.version
            and address in net
            for net in self._wide
        )


def in_networks(address: IPAddress | None, networks: Iterable[Network] | NetworkSet) -> bool:
    if address is None:
        return False
    if not isinstance(networks, NetworkSet):
        networks = NetworkSet(networks)
    return address in networks


def forwarded_hops(header_values: Sequence[str]) -> list[str]:
    """Every hop of every X-Forwarded-For header, left to right, in arrival order."""
    return [hop.strip() for value in header_values for hop in value.split(",") if hop.strip()]


def client_address(
    peer: str | None,
    forwarded_for: Sequence[str],
    trusted_proxies: Sequence[Network] | NetworkSet,
) -> IPAddress | None:
    """The address to judge a request by; None when it cannot be known (never trusted)."""
    address = parse_address(peer) if peer else None
    if address is None or not in_networks(address, trusted_proxies):
        return address
    hops = forwarded_hops(forwarded_for)
    for hop in reversed(hops):
        hop_address = parse_address(hop)
        if hop_address is None:
            return None
        if not in_networks(hop_address, trusted_proxies):
            return hop_address
    # Every hop is a trusted proxy: the left-most one is the closest thing to a client.
    return parse_address(hops[0]) if hops else address
