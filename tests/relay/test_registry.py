"""The registry's box (callback_relay/registry.py's open_box): a database written before the
shared box opens with it, and a new one gets the shared box's key check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callback_relay.crypto import RelayKeyError, relay_box, secret_aad
from callback_relay.platform import PLATFORM_FIELDS, PlatformRecord, open_platform
from callback_relay.registry import KEY_CHECK, open_box
from callback_relay.sqlite_store import SqliteStore
from smartduka_tui.secretbox import SealBrokenError

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
