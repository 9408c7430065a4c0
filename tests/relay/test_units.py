"""Small pure pieces: source addresses, rate limiter, secret box, settings, group commit."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from callback_relay.crypto import RelayKeyError, relay_box, secret_aad
from callback_relay.platform import PLATFORM_FIELDS, PlatformRecord, open_platform
from callback_relay.registry import KEY_CHECK, open_box
from callback_relay.settings import SAFARICOM_CALLBACK_ADDRESSES, RelaySettings
from callback_relay.sources import client_address, parse_address
from callback_relay.sqlite_store import SqliteStore
from callback_relay.store import NewEvent
from callback_relay.types import AppendOutcome, EventKind
from smartduka_tui.clock import ManualClock
from smartduka_tui.limits import TokenBuckets
from smartduka_tui.secretbox import SealBrokenError
from tests.support.daraja import REFERENCE

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


def test_rate_limiter_refills_at_its_rate() -> None:
    clock = ManualClock()
    limiter = TokenBuckets(clock, capacity=2, rate_per_s=2)
    assert [limiter.take("a"), limiter.take("a")] == [0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0
    clock.advance(0.5)
    assert limiter.take("a") == 0


def test_secret_box_binds_its_associated_data_and_hides_its_key() -> None:
    box = relay_box(bytes(range(32)))
    blob = box.encrypt(b"secret", secret_aad("s1", "k1"))
    assert len(blob) == 1 + 12 + len(b"secret") + 16
    assert box.decrypt(blob, secret_aad("s1", "k1")) == b"secret"
    with pytest.raises(SealBrokenError, match="tampered with or moved"):
        box.decrypt(blob, secret_aad("s2", "k1"))
    with pytest.raises(SealBrokenError):
        box.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), secret_aad("s1", "k1"))
    assert box.encrypt(b"x", b"") != box.encrypt(b"x", b"")  # fresh nonce each time
    assert bytes(range(32)).hex() not in repr(box)
    assert not relay_box(bytes(32)).matches(box.key_check())


OLD_SECRETS = Path(__file__).parents[1] / "data" / "relay" / "old_secrets.json"


async def test_a_database_written_before_the_shared_box_opens_with_it(tmp_path: Path) -> None:
    """The relay's key check, platform credentials and callback secrets as the relay's own box
    wrote them (stored fixture): the key check is read as it is, the rest has the format."""
    written = json.loads(OLD_SECRETS.read_text(encoding="utf-8"))
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        await store.set_meta_if_absent(KEY_CHECK, bytes.fromhex(written["key_check"]))
        box = await open_box(store, tmp_path / "relay.db", written["relay_key"], create=False)
        assert box is not None
        # The old check is kept as it was, and it still tells a wrong key.
        assert await store.get_meta(KEY_CHECK) == bytes.fromhex(written["key_check"])
        with pytest.raises(RelayKeyError, match="does not match"):
            await open_box(store, tmp_path / "relay.db", "ab" * 32, create=False)
    finally:
        await store.close()
    stored = written["platform"]
    record = PlatformRecord(
        stored["shortcode"],
        stored["daraja_url"],
        {name: bytes.fromhex(stored["ciphertexts"][name]) for name in PLATFORM_FIELDS},
        stored["updated_at"],
    )
    merchant = open_platform(box, record).merchant
    assert {
        "consumer_key": merchant.credentials.consumer_key.get_secret_value(),
        "consumer_secret": merchant.credentials.consumer_secret.get_secret_value(),
        "passkey": merchant.passkey.get_secret_value(),
    } == written["platform_values"]
    secret = written["callback_secret"]
    aad = secret_aad(secret["shop_id"], secret["kid"])
    assert box.decrypt(bytes.fromhex(secret["ciphertext"]), aad).decode() == secret["value"]
    moved = dict(record.ciphertexts, passkey=record.ciphertexts["consumer_key"])
    with pytest.raises(SealBrokenError):
        open_platform(box, PlatformRecord(record.shortcode, record.daraja_url, moved, 0))


async def test_a_new_database_gets_the_shared_boxs_key_check(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        box = await open_box(store, tmp_path / "relay.db", "cd" * 32, create=False)
        assert box is not None
        check = await store.get_meta(KEY_CHECK)
        assert check is not None and box.matches(check)
        assert not relay_box(bytes.fromhex("ab" * 32)).matches(check)
    finally:
        await store.close()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTDUKA_RELAY_MODE", "production")
    monkeypatch.setenv("SMARTDUKA_RELAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    monkeypatch.setenv("SMARTDUKA_RELAY_ALLOWLIST", '["196.201.214.200"]')
    settings = RelaySettings()
    assert settings.mode == "production"
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "192.168.1.1/32"]
    assert [str(n) for n in settings.allowlist] == ["196.201.214.200/32"]
    monkeypatch.setenv("SMARTDUKA_RELAY_MODE", "live")
    with pytest.raises(ValidationError, match="mode"):
        RelaySettings()


def test_default_allowlist_is_the_published_twelve() -> None:
    """The default allowlist is exactly REFERENCE.md section 4's list of 12 addresses."""
    text = REFERENCE.read_text()
    start = text.index("the official list is these 12 addresses")
    published = set(re.findall(r"196\.201\.\d+\.\d+", text[start : text.index("- The same 12")]))
    assert len(published) == 12
    settings = RelaySettings()
    assert {str(n.network_address) for n in settings.allowlist} == published
    assert set(SAFARICOM_CALLBACK_ADDRESSES) == published


async def test_group_commit_batches_concurrent_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        events = [
            NewEvent(EventKind.CALLBACK, "s1", "t1", f"ref{i}", 1, b"{}", f"sha{i}")
            for i in range(200)
        ]
        results = await asyncio.gather(*(store.append(e) for e in events))
        assert {r.outcome for r in results} == {AppendOutcome.STORED}
        assert len({r.event_id for r in results}) == 200
        # Far fewer commits than writes: rows that arrived during a commit shared the next one.
        assert store.committed_writes == 200
        assert store.commits < 20
    finally:
        await store.close()


def test_every_setting_is_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "callback_relay" / "README.md").read_text()
    for name in RelaySettings.model_fields:
        assert f"`SMARTDUKA_RELAY_{name.upper()}`" in readme, name


async def test_one_failing_write_does_not_spoil_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:

        def broken(conn: object) -> None:
            raise ValueError("a bug in one write")

        good = [
            store.append(NewEvent(EventKind.CALLBACK, "s1", "t1", f"r{i}", 1, b"{}", f"h{i}"))
            for i in range(5)
        ]
        outcomes = await asyncio.gather(store._write(broken), *good, return_exceptions=True)
        assert isinstance(outcomes[0], ValueError)
        assert all(not isinstance(o, BaseException) for o in outcomes[1:])
        assert (await store.inbox_stats())[0].unacked == 5
    finally:
        await store.close()
