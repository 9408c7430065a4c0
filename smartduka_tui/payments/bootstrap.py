"""The engine's parts from settings: the shop, its enrolled till and the gateway it pushes with.

`smartduka_tui.till.open_till` composes them into a running till (with its relay link); the
engine alone (`running_engine`) is for tests and tools whose point is the engine itself::

    async with running_engine(settings) as engine:
        view = await engine.start_payment("S1", 10, "0708374149")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.model import ShopType
from smartduka_tui.payments.api import PaymentRefused, RefusalReason
from smartduka_tui.payments.broker_gateway import BrokerGateway, relay_timeout
from smartduka_tui.payments.gateway import DarajaGateway, DirectGateway, daraja_client
from smartduka_tui.payments.service import PaymentEngine, enrolled_till
from smartduka_tui.payments.shop_receipts import ShopReceipts
from smartduka_tui.store.errors import InputError
from smartduka_tui.store.records import Shop, TillCredentials
from smartduka_tui.store.store import Store, open_till_store


@dataclass(frozen=True, slots=True)
class EngineParts:
    """What an engine is made of: the shop, this till's enrolment, and the shop's own gateway
    (direct to Daraja with its credentials, or through the relay's broker)."""

    shop: Shop
    till: TillCredentials
    gateway: DarajaGateway

    def engine(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        gateway: DarajaGateway | None = None,
    ) -> PaymentEngine:
        """The engine made of these parts; `gateway` wraps this shop's own (the till's
        observed one), or the shop's gateway is used as it is."""
        return PaymentEngine(
            store=store,
            settings=settings,
            clock=clock,
            shop=self.shop,
            till=self.till,
            gateway=gateway or self.gateway,
        )


async def engine_parts(
    store: Store,
    settings: Settings,
    clock: Clock,
    *,
    shop_id: str | None = None,
    till_id: str | None = None,
    daraja_transport: httpx.AsyncBaseTransport | None = None,
) -> EngineParts:
    """The configured shop, its till and its gateway (reaching Daraja through
    `daraja_transport` when given: a test's faults). PaymentRefused(SHOP_NOT_READY) says what
    is missing (the shop, its credentials, an enrolled till)."""
    shop = await find_shop(store, shop_id or settings.shop_id)
    if shop.mpesa_type is ShopType.PLATFORM:
        till = await enrolled_till(store, shop, till_id)
        relay_url = settings.relay_url_for(till.relay_url)
        broker = BrokerGateway(shop, till, relay_url, timeout=relay_timeout(settings))
        return EngineParts(shop, till, broker)
    try:
        credentials = await store.shops.credentials(shop.id)
    except InputError as error:
        raise PaymentRefused(
            RefusalReason.SHOP_NOT_READY,
            f"Shop {shop.id!r} cannot push: its {error.field} {error.message}.",
        ) from None
    till = await enrolled_till(store, shop, till_id)
    client = daraja_client(settings, clock, transport=daraja_transport)
    direct = DirectGateway(shop, credentials, client, clock)
    return EngineParts(shop, till, direct)


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
async def started(
    engine: PaymentEngine, *, run_reconciler: bool, shop_receipts: ShopReceipts | None = None
) -> AsyncIterator[PaymentEngine]:
    """Start `engine` (its scheduled pull asking `shop_receipts`); on the way out stop it and
    close its gateway (also when it failed to start, so a half-opened till leaves no client
    open)."""
    try:
        await engine.start(run_reconciler=run_reconciler, shop_receipts=shop_receipts)
        yield engine
    finally:
        await engine.close()
        await engine.gateway.aclose()


@asynccontextmanager
async def running_engine(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_reconciler: bool = True,
    shop_id: str | None = None,
    till_id: str | None = None,
) -> AsyncIterator[PaymentEngine]:
    """The engine alone (no relay link, no desks): the data folder taken, the store opened and
    the engine started; all closed on the way out. A till is `smartduka_tui.till.open_till`."""
    clock = clock or SystemClock()
    async with open_till_store(
        settings.data_dir, keyring_file=settings.keyring_file, clock=clock
    ) as store:
        parts = await engine_parts(store, settings, clock, shop_id=shop_id, till_id=till_id)
        engine = parts.engine(store, settings, clock)
        async with started(engine, run_reconciler=run_reconciler):
            yield engine
