"""Routing fields bound to the vault: a shortcode, till number, prefix or relay URL edited in the
database file stops the till before any credential leaves it, with words that say so."""

from __future__ import annotations

import pytest

from smartduka_tui.store import KeyMissingError, Store, TamperedRoutingError
from smartduka_tui.store.shops import ROUTING_FIELD
from tests.store.helpers import make_shop, paybill_config


async def _edit(store: Store, statement: str, params: tuple[object, ...]) -> None:
    """Change the file as someone with direct access would."""
    async with store.write() as tx:
        await tx.execute(statement, params)


@pytest.mark.parametrize(
    ("column", "value", "named"),
    [
        ("business_shortcode", "600999", "business shortcode"),
        ("account_prefix", "EVIL", "account prefix"),
        ("mpesa_type", "till", "mpesa type"),
    ],
)
async def test_an_edited_shop_routing_column_stops_the_credentials(
    store: Store, column: str, value: str, named: str
) -> None:
    shop_id, _ = await make_shop(store)
    assert (await store.shops.credentials(shop_id)).shop_id == shop_id
    await _edit(
        store,
        f"UPDATE shops SET {column} = ? WHERE id = ?",  # noqa: S608 - column from the list
        (value, shop_id),
    )
    with pytest.raises(TamperedRoutingError) as refused:
        await store.shops.credentials(shop_id)
    message = str(refused.value)
    assert message.startswith(f"shop {shop_id!r}: {named} in the database differ from the copy")
    assert "the database was edited" in message and "Nothing was sent" in message
    assert value not in message or column == "mpesa_type"


async def test_an_edited_relay_url_stops_the_till_key(store: Store) -> None:
    shop_id, till_id = await make_shop(store)
    assert (await store.tills.credentials(shop_id, till_id)).relay_url == "http://127.0.0.1:8080"
    await _edit(
        store,
        "UPDATE tills SET relay_url = 'http://catcher.invalid:8000' WHERE id = ?",
        (till_id,),
    )
    with pytest.raises(TamperedRoutingError, match="relay url in the database differ"):
        await store.tills.credentials(shop_id, till_id)


async def test_a_deleted_routing_seal_is_refused_too(store: Store) -> None:
    shop_id, _ = await make_shop(store)
    await _edit(
        store, "DELETE FROM secrets WHERE shop_id = ? AND field = ?", (shop_id, ROUTING_FIELD)
    )
    with pytest.raises(TamperedRoutingError, match="no sealed copy of its routing fields"):
        await store.shops.credentials(shop_id)


async def test_a_change_through_the_store_reseals_the_routing(store: Store) -> None:
    shop_id, _ = await make_shop(store)
    async with store.write() as tx:
        await store.shops.update(tx, paybill_config(shop_id, business_shortcode="600111"))
    assert (await store.shops.credentials(shop_id)).shop_id == shop_id


async def test_a_keyless_change_to_a_shop_with_secrets_is_refused(store: Store) -> None:
    shop_id, _ = await make_shop(store)
    keyless = await Store.open(store.db.path, clock=store.db.clock)
    try:
        with pytest.raises(KeyMissingError):
            async with keyless.write() as tx:
                await keyless.shops.update(tx, paybill_config(shop_id, account_prefix="ZZ"))
    finally:
        await keyless.close()
    shop = await store.shops.require(shop_id)
    assert shop.account_prefix == "DUKA"
    assert (await store.shops.credentials(shop_id)).shop_id == shop_id
