"""Shops: every bad field is refused with its own message and leaves the database unchanged."""

from __future__ import annotations

from dataclasses import replace

import pytest

from smartduka_tui.model import ShopSecretField, ShopType, VerificationStatus
from smartduka_tui.store import (
    NotFoundError,
    Secret,
    ShopConfig,
    ShopConfigError,
    ShopSecrets,
    Store,
)
from smartduka_tui.store.shops import ROUTING_FIELD
from tests.store.canaries import new_canary
from tests.store.helpers import canary_secrets, paybill_config, unique_id

TILL_SHOP = {"mpesa_type": ShopType.TILL, "business_shortcode": "1850908", "till_number": "5501234"}
PLATFORM_SHOP = {"mpesa_type": ShopType.PLATFORM, "business_shortcode": None}


async def _snapshot(store: Store) -> tuple[object, ...]:
    """Everything a failed change must leave as it was."""
    tables = []
    for table in ("shops", "secrets", "key_checks", "tills", "audit_log", "audit_head"):
        rows = await store.db.fetchall(f"SELECT * FROM {table} ORDER BY rowid")  # noqa: S608
        tables.append([tuple(row) for row in rows])
    return tuple(map(tuple, tables))


def _secrets(**changes: str | None) -> ShopSecrets:
    base = canary_secrets()
    values = {
        "consumer_key": base.consumer_key,
        "consumer_secret": base.consumer_secret,
        "passkey": base.passkey,
    }
    for name, value in changes.items():
        values[name] = None if value is None else Secret(value)
    return ShopSecrets(**values)


BAD_ADDS = [
    ({"id": ""}, {}, "id", "1 to 64 letters"),
    ({"id": "shop/1"}, {}, "id", "1 to 64 letters"),
    ({"id": "x" * 65}, {}, "id", "1 to 64 letters"),
    ({"id": "mpesa-shop"}, {}, "id", "must not contain 'mpesa'"),
    ({"name": "   "}, {}, "name", "must not be empty"),
    ({"name": "n" * 81}, {}, "name", "at most 80 characters, got 81"),
    ({"name": "Duka\x07"}, {}, "name", "control characters"),
    ({"mpesa_type": "bank"}, {}, "mpesa_type", "paybill, till or platform"),
    ({"business_shortcode": None}, {}, "business_shortcode", "required for a paybill shop"),
    ({"business_shortcode": "1234"}, {}, "business_shortcode", "5 to 7 digits"),
    ({"business_shortcode": "12345678"}, {}, "business_shortcode", "5 to 7 digits"),
    ({"business_shortcode": "17437a"}, {}, "business_shortcode", "got '17437a'"),
    ({"till_number": "5501234"}, {}, "till_number", "applies only to till"),
    ({**TILL_SHOP, "till_number": None}, {}, "till_number", "required for a till"),
    ({**TILL_SHOP, "till_number": "55-01"}, {}, "till_number", "5 to 7 digits"),
    ({**TILL_SHOP, "business_shortcode": None}, {}, "business_shortcode", "store number"),
    ({"account_prefix": ""}, {}, "account_prefix", "1 to 4 letters or digits"),
    ({"account_prefix": "DUKAS"}, {}, "account_prefix", "1 to 4 letters or digits"),
    ({"account_prefix": "D-K"}, {}, "account_prefix", "1 to 4 letters or digits"),
    ({"enabled": "yes"}, {}, "enabled", "true or false"),
    ({}, {"consumer_key": None}, "consumer_key", "required to enable a paybill shop"),
    ({}, {"consumer_secret": None}, "consumer_secret", "required to enable"),
    ({**TILL_SHOP}, {"passkey": None}, "passkey", "required to enable a till shop"),
    ({}, {"consumer_key": "short1"}, "consumer_key", "8 to 128 characters, got 6"),
    ({}, {"consumer_key": "has space inside"}, "consumer_key", "has spaces"),
    ({}, {"consumer_secret": "colon:inside:it"}, "consumer_secret", "other characters"),
    ({}, {"passkey": "abc123"}, "passkey", "16 to 256 characters, got 6"),
    ({}, {"passkey": "p" * 257}, "passkey", "16 to 256 characters, got 257"),
    (
        {**PLATFORM_SHOP, "business_shortcode": "174379"},
        {},
        "business_shortcode",
        "must be empty for a platform shop",
    ),
    ({**PLATFORM_SHOP, "till_number": "5501234"}, {}, "till_number", "empty for a platform"),
    ({**PLATFORM_SHOP}, {}, "consumer_key", "relay holds the platform's credentials"),
]


@pytest.mark.parametrize(("config", "secrets", "field", "message"), BAD_ADDS)
async def test_bad_shop_field_is_refused_and_nothing_is_stored(
    store: Store,
    config: dict[str, object],
    secrets: dict[str, str | None],
    field: str,
    message: str,
) -> None:
    shop_id = unique_id("shop")
    bad = replace(paybill_config(shop_id), **config)  # type: ignore[arg-type]
    before = await _snapshot(store)
    given = _secrets(**secrets)
    with pytest.raises(ShopConfigError) as caught:
        async with store.write() as tx:
            await store.shops.add(tx, bad, given)
    assert caught.value.field == field
    assert message in caught.value.message
    assert await _snapshot(store) == before
    for secret in given.given().values():
        assert secret.reveal() not in str(caught.value)


async def test_duplicate_shop_id_is_refused(store: Store) -> None:
    shop_id = unique_id("shop")
    async with store.write() as tx:
        await store.shops.add(tx, paybill_config(shop_id), canary_secrets())
    before = await _snapshot(store)
    with pytest.raises(ShopConfigError, match="already exists"):
        async with store.write() as tx:
            await store.shops.add(tx, paybill_config(shop_id, name="Other"), canary_secrets())
    assert await _snapshot(store) == before


async def test_add_and_read_back(store: Store) -> None:
    shop_id = unique_id("shop")
    secrets = canary_secrets()
    config = ShopConfig(
        id=shop_id,
        name="  Kiosk ya Mama  ",
        mpesa_type=ShopType.TILL,
        account_prefix="KM1",
        business_shortcode=" 1850908 ",
        till_number="5501234",
    )
    async with store.write() as tx:
        shop = await store.shops.add(tx, config, secrets)
    assert shop.name == "Kiosk ya Mama"
    assert shop.business_shortcode == "1850908"
    assert shop.party_b == "5501234"
    assert shop.account_reference("00012345") == "KM100012345"
    with pytest.raises(ValueError, match="at most 9"):
        shop.account_reference("0001234567")
    assert shop.verification_status is VerificationStatus.PENDING
    assert shop.secret_fields == frozenset(ShopSecretField)
    creds = await store.shops.credentials(shop_id)
    assert creds.passkey == secrets.passkey
    assert creds.consumer_key == secrets.consumer_key
    masked = await store.shops.masked_secrets(shop_id)
    assert secrets.passkey is not None
    assert masked[ShopSecretField.PASSKEY] == "****" + secrets.passkey.reveal()[-4:]
    entry = (await store.audit.entries(shop_id))[0]
    assert entry.action == "shop.added"
    assert sorted(entry.detail["secrets_set"]) == sorted(f.value for f in ShopSecretField)


async def test_platform_shop_has_no_credentials(store: Store) -> None:
    shop_id = unique_id("shop")
    async with store.write() as tx:
        shop = await store.shops.add(tx, paybill_config(shop_id, **PLATFORM_SHOP), ShopSecrets())
    assert shop.mpesa_type is ShopType.PLATFORM and shop.enabled
    with pytest.raises(ShopConfigError, match="use the relay"):
        await store.shops.credentials(shop_id)


async def test_disabled_shop_may_wait_for_its_passkey(store: Store) -> None:
    shop_id = unique_id("shop")
    async with store.write() as tx:
        await store.shops.add(tx, paybill_config(shop_id, enabled=False), _secrets(passkey=None))
    with pytest.raises(ShopConfigError, match="passkey"):
        await store.shops.credentials(shop_id)
    with pytest.raises(ShopConfigError, match="passkey"):
        async with store.write() as tx:
            shop = await store.shops.require(shop_id, tx=tx)
            await store.shops.update(tx, replace(shop.config, enabled=True))
    passkey = Secret(new_canary("pk") + "0" * 20)
    async with store.write() as tx:
        shop = await store.shops.require(shop_id, tx=tx)
        enabled = await store.shops.update(
            tx, replace(shop.config, enabled=True), ShopSecrets(passkey=passkey)
        )
    assert enabled.enabled
    assert (await store.shops.credentials(shop_id)).passkey == passkey


async def test_update_resets_verification_when_payment_details_change(store: Store) -> None:
    shop_id = unique_id("shop")
    async with store.write() as tx:
        await store.shops.add(tx, paybill_config(shop_id), canary_secrets())
        verified = await store.shops.set_verification(tx, shop_id, VerificationStatus.VERIFIED)
    assert verified.verified_at is not None
    async with store.write() as tx:
        renamed = await store.shops.update(tx, replace(verified.config, name="New name"))
    assert renamed.verification_status is VerificationStatus.VERIFIED
    async with store.write() as tx:
        moved = await store.shops.update(tx, replace(renamed.config, business_shortcode="600984"))
    assert moved.verification_status is VerificationStatus.PENDING
    assert moved.verified_at is None
    entry = (await store.audit.entries(shop_id))[0]
    assert entry.detail["changed"] == {"business_shortcode": "600984"}


async def test_switch_to_platform_needs_credentials_cleared(store: Store) -> None:
    shop_id = unique_id("shop")
    async with store.write() as tx:
        shop = await store.shops.add(tx, paybill_config(shop_id), canary_secrets())
    platform = replace(shop.config, mpesa_type=ShopType.PLATFORM, business_shortcode=None)
    before = await _snapshot(store)
    with pytest.raises(ShopConfigError, match="clear the shop's credentials"):
        async with store.write() as tx:
            await store.shops.update(tx, platform)
    assert await _snapshot(store) == before
    async with store.write() as tx:
        switched = await store.shops.update(tx, platform, clear_secrets=True)
    assert switched.secret_fields == frozenset()
    # Only the sealed copy of the routing fields is left (store/shops.py ROUTING_FIELD).
    assert await store.credentials.fields(shop_id) == [ROUTING_FIELD]


async def test_bad_update_changes_nothing(store: Store) -> None:
    shop_id = unique_id("shop")
    async with store.write() as tx:
        shop = await store.shops.add(tx, paybill_config(shop_id), canary_secrets())
    before = await _snapshot(store)
    with pytest.raises(ShopConfigError, match="5 to 7 digits"):
        async with store.write() as tx:
            await store.shops.update(
                tx,
                replace(shop.config, name="Renamed", business_shortcode="12"),
                _secrets(passkey=new_canary() + "x" * 20),
            )
    assert await _snapshot(store) == before
    with pytest.raises(NotFoundError):
        async with store.write() as tx:
            await store.shops.update(tx, replace(shop.config, id=unique_id("ghost")))
