"""Where a callback came from (callback_relay/sources.py): the peer, or the trusted proxies'
X-Forwarded-For, and junk refused."""

from __future__ import annotations

import ipaddress

import pytest

from callback_relay.sources import client_address, parse_address

PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("1.2.3.4", [], "1.2.3.4"),
        ("1.2.3.4", ["196.201.214.200"], "1.2.3.4"),  # untrusted peer: header ignored
        ("10.0.0.1", ["196.201.214.200"], "196.201.214.200"),
        ("10.0.0.1", ["6.6.6.6, 196.201.214.200"], "196.201.214.200"),
        ("10.0.0.1", ["196.201.214.200, 6.6.6.6"], "6.6.6.6"),
        ("10.0.0.1", ["196.201.214.200", "6.6.6.6, 10.0.0.2"], "6.6.6.6"),
        ("10.0.0.1", ["10.0.0.9, 10.0.0.2"], "10.0.0.9"),
        ("10.0.0.1", ["garbage, 10.0.0.2"], None),
        ("10.0.0.1", [], "10.0.0.1"),
        ("::ffff:196.201.214.200", [], "196.201.214.200"),
        ("::ffff:10.0.0.1", ["::ffff:196.201.214.200"], "196.201.214.200"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("10.0.0.1", ["196.201.214.200:5000"], "196.201.214.200"),
        ("not-an-ip", [], None),
    ],
)
def test_client_address(peer: str, xff: list[str], expected: str | None) -> None:
    found = client_address(peer, xff, PROXIES)
    assert (None if found is None else str(found)) == expected


def test_parse_address_rejects_junk() -> None:
    assert parse_address("") is None
    assert parse_address("1.2.3.4.5") is None
    assert str(parse_address(" 1.2.3.4 ")) == "1.2.3.4"
