"""Per-till callback keys: a till signs only for itself, `till rekey`, and tills enrolled before."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from callback_relay.crypto import derive_till_secret
from callback_relay.registry import RegistryError
from callback_relay.stores import store_for
from callback_relay.types import RefusalReason
from smartduka_tui.mpesa.callback_path import decode_secret, sign_new_attempt
from smartduka_tui.mpesa.enrolment import Enrolment
from tests.relay.conftest import Harness, attempt_path
from tests.relay.test_intake import refusals


def path_for(enrolment: Enrolment, *, till_id: str, kid: str | None = None) -> str:
    """A path for `till_id` signed with `enrolment`'s own secret (a till trying a sibling)."""
    signed = sign_new_attempt(
        enrolment.callback_secret, enrolment.shop_id, till_id, kid or enrolment.callback_kid
    )
    return signed.path()


async def stored(h: Harness, till_id: str) -> int:
    return await h.count("SELECT COUNT(*) FROM events WHERE till_id = ?", till_id)


async def test_each_till_gets_its_own_secret_never_the_shops(harness: Harness) -> None:
    shop = await harness.shop()
    sibling = await harness.till(shop.shop_id)
    entry = harness.relay.cache.entry(shop.shop_id)
    assert entry is not None
    shop_secret = entry.secrets_by_kid["k1"]
    assert (shop.callback_kid, sibling.callback_kid) == ("k1-r1", "k1-r1")
    assert shop.callback_secret != sibling.callback_secret
    assert shop_secret not in (shop.callback_secret, sibling.callback_secret)
    assert shop.callback_secret == derive_till_secret(shop_secret, shop.shop_id, shop.till_id, 1)
    assert len(decode_secret(shop.callback_secret)) == 32


async def test_a_till_key_signs_for_no_sibling_and_a_revoked_till_for_nobody(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    sibling = await harness.till(shop.shop_id)
    assert (await harness.post(attempt_path(sibling))).status_code == 200

    before = refusals(harness, RefusalReason.BAD_SIGNATURE)
    response = await harness.post(path_for(shop, till_id=sibling.till_id))
    assert (response.status_code, response.json()) == (404, {"error": "not found"})
    assert refusals(harness, RefusalReason.BAD_SIGNATURE) == before + 1

    await harness.registry.revoke_till(shop.till_id)
    await harness.relay.cache.refresh_if_changed()
    # Revoked: its key signs neither for a sibling nor for itself any more.
    assert (await harness.post(path_for(shop, till_id=sibling.till_id))).status_code == 404
    before = refusals(harness, RefusalReason.UNKNOWN_TILL)
    assert (await harness.post(attempt_path(shop))).status_code == 404
    assert refusals(harness, RefusalReason.UNKNOWN_TILL) == before + 1
    # Nothing of the refusals was stored (they failed the signature check), and the sibling
    # is unaffected.
    assert await stored(harness, shop.till_id) == 0
    assert (await harness.post(attempt_path(sibling))).status_code == 200
    assert await stored(harness, sibling.till_id) == 2


async def test_a_rekeyed_tills_old_keys_are_refused_and_its_new_keys_work(
    harness: Harness,
) -> None:
    shop = await harness.shop()
    old_path = attempt_path(shop)
    assert (await harness.post(old_path)).status_code == 200

    rekeyed = await harness.registry.rekey_till(shop.till_id)
    await harness.relay.cache.refresh_if_changed()
    assert (rekeyed.shop_id, rekeyed.till_id) == (shop.shop_id, shop.till_id)
    assert rekeyed.callback_kid == "k1-r2"
    assert rekeyed.till_key != shop.till_key
    assert rekeyed.callback_secret != shop.callback_secret

    # The old callback secret: refused for a new attempt and for the attempt it signed before.
    before = refusals(harness, RefusalReason.UNKNOWN_KID)
    assert (await harness.post(attempt_path(shop))).status_code == 404
    assert (await harness.post(old_path)).status_code == 404
    assert refusals(harness, RefusalReason.UNKNOWN_KID) == before + 2
    # The old till key reads no feed; the new one reads what arrived before and after.
    assert (await harness.feed(shop)).status_code == 401
    assert (await harness.post(attempt_path(rekeyed))).status_code == 200
    events = (await harness.feed(rekeyed)).json()["events"]
    assert len(events) == 2
    assert await stored(harness, shop.till_id) == 2


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("unknown", "no till with id"),
        ("malformed", "no till with id"),
        ("revoked", "is revoked"),
    ],
)
async def test_rekey_refusals_say_why_and_change_nothing(
    harness: Harness, target: str, message: str
) -> None:
    shop = await harness.shop()
    gone = await harness.till(shop.shop_id)
    await harness.registry.revoke_till(gone.till_id)
    till_id = {"unknown": "tnosuchtill22", "malformed": "../x", "revoked": gone.till_id}[target]
    version = await harness.relay.store.registry_version()
    with pytest.raises(RegistryError, match=message):
        await harness.registry.rekey_till(till_id)
    assert await harness.relay.store.registry_version() == version
    assert await harness.count("SELECT COUNT(*) FROM tills WHERE key_revision > 1") == 0


async def _make_legacy(h: Harness, store_kind: str) -> None:
    """Put the database back to before per-till keys, as an older relay left it, then let a
    relay start on it (which migrates it) and reload the running one's registry."""
    url = h.relay.settings.database_url
    if store_kind == "sqlite":
        with sqlite3.connect(h.relay.settings.db) as conn:
            conn.execute("ALTER TABLE tills DROP COLUMN key_revision")
            conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
    else:
        import psycopg

        assert url is not None
        async with await psycopg.AsyncConnection.connect(url.get_secret_value()) as conn:
            # Back to migration 1: what came after it is dropped, then migrated again.
            await conn.execute("ALTER TABLE tills DROP COLUMN key_revision")
            await conn.execute(
                "DROP TABLE platform_account, platform_shops, broker_pushes,"
                " broker_push_buckets, broker_tokens"
            )
            await conn.execute("DELETE FROM schema_migrations WHERE version > 1")
    migrated = store_for(h.relay.settings)
    await migrated.open()
    await migrated.close()
    await h.relay.cache.load()


async def test_a_till_enrolled_before_per_till_keys_works_until_rekeyed(
    harness: Harness, store_kind: str
) -> None:
    shop = await harness.shop()
    entry = harness.relay.cache.entry(shop.shop_id)
    assert entry is not None
    # What an older relay handed the till: the shop secret itself under the shop kid.
    legacy: dict[str, Any] = {
        **shop.as_json(),
        "callback_kid": "k1",
        "callback_secret": entry.secrets_by_kid["k1"],
    }
    await _make_legacy(harness, store_kind)
    assert (
        await harness.count("SELECT key_revision FROM tills WHERE till_id = ?", shop.till_id) == 0
    )
    assert (await harness.post(attempt_path(legacy))).status_code == 200

    rekeyed = await harness.registry.rekey_till(shop.till_id)
    await harness.relay.cache.refresh_if_changed()
    assert rekeyed.callback_kid == "k1-r1"
    assert (await harness.post(attempt_path(legacy))).status_code == 404
    assert (await harness.post(attempt_path(rekeyed))).status_code == 200
    assert await stored(harness, shop.till_id) == 2
