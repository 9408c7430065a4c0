"""Opening a running payment engine from settings: the store, the shop's gateway, the engine.

Used by `smartduka pay`, `smartduka reconcile` and the app, so that each opens the till the
same way::

    async with running_engine(settings) as engine:
        view = await engine.start_payment("S1", 10, "0708374149")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.model import ShopType
from smartduka_tui.payments.api import PaymentRefused, RefusalReason
from smartduka_tui.payments.broker_gateway import open_brokered_engine
from smartduka_tui.payments.gateway import DirectGateway, daraja_client
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.store.errors import InputError
from smartduka_tui.store.records import Shop
from smartduka_tui.store.store import Store, open_till_store


async def engine_for_store(
    store: Store,
    settings: Settings,
    clock: Clock,
    *,
    shop_id: str | None = None,
    till_id: str | None = None,
) -> PaymentEngine:
    """An engine (not yet started) for the configured shop, pushing with its own credentials.

    PaymentRefused(SHOP_NOT_READY) says what is missing.
    """
    shop = await find_shop(store, shop_id or settings.shop_id)
    if shop.mpesa_type is ShopType.PLATFORM:
        return await open_brokered_engine(store, settings, clock, shop, till_id=till_id)
    try:
        credentials = await store.shops.credentials(shop.id)
    except InputError as error:
        raise PaymentRefused(
            RefusalReason.SHOP_NOT_READY,
            f"Shop {shop.id!r} cannot push: its {error.field} {error.message}.",
        ) from None
    gateway = DirectGateway(shop, credentials, daraja_client(settings, clock), clock)
    try:
        return await PaymentEngine.open(store, settings, clock, gateway, shop, till_id=till_id)
    except BaseException:
        await gateway.aclose()
        raise


async def find_shop(store: Store, shop_id: str | None) -> Shop:
    """The shop this till sells for, or PaymentRefused(SHOP_NOT_READY) saying what to do."""
    if not shop_id:
        shops = await store.shops.list_ids()
        if len(shops) != 1:
            raise PaymentRefused(
                RefusalReason.SHOP_NOT_READY,
                "No shop is chosen: set shop_id in the settings (SMARTDUKA_SHOP_ID)"
                + (f"; this till has {len(shops)} shops." if shops else "; add one first."),
            )
        shop_id = shops[0]
    shop = await store.shops.get(shop_id)
    if shop is None:
        raise PaymentRefused(
            RefusalReason.SHOP_NOT_READY, f"There is no shop {shop_id!r} on this till."
        )
    return shop


@asynccontextmanager
async def running_engine(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_reconciler: bool = True,
    shop_id: str | None = None,
    till_id: str | None = None,
) -> AsyncIterator[PaymentEngine]:
    """Take the data folder, open the store and start the engine; all closed on the way out."""
    clock = clock or SystemClock()
    async with open_till_store(settings.data_dir, clock=clock) as store:
        engine = await engine_for_store(store, settings, clock, shop_id=shop_id, till_id=till_id)
        try:
            await engine.start(run_reconciler=run_reconciler)
            yield engine
        finally:
            await engine.close()
            await engine.gateway.aclose()
