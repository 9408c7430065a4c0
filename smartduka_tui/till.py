"""The composition root: one till opened from its settings, each part built once and in order.

`open_till(settings)` is how the app, `smartduka pay`, `reconcile`, `verify-receipt`,
`reverse`, `pull`, the demo, the screenshot script, the benchmarks and the test harness get a
till::

    async with open_till(settings) as till:
        view = await till.engine.start_payment("S1", 10, "0708374149")

In order: the data folder's store; the shop's receipt index at the relay (when there is one),
built once for the engine's scheduled pull, the receipt checks, the receipt publisher, the
manager's pull and `smartduka pull`; the connection monitor; the engine, pushing through a
gateway that reports to that monitor from its first call; the receipt checks and the C2B desk
(when there is a relay to bring their answers); the relay client, given where M-Pesa's results
and stored events go when it is made; the Daraja probe; the shift desk. The manager tools are
built the first time they are asked for. Everything is closed in the reverse order on the way
out, and nothing is set on a running part afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal

import httpx

from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.connectivity import ConnectivityMonitor, DarajaProbe, ObservedGateway
from smartduka_tui.payments.api import PaymentRefused
from smartduka_tui.payments.bootstrap import EngineParts, engine_parts, started
from smartduka_tui.payments.c2b import C2BDesk
from smartduka_tui.payments.gateway import DarajaGateway, DirectGateway
from smartduka_tui.payments.pull import StatementPull, statement_pull_for
from smartduka_tui.payments.sales import SaleDesk
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.payments.shifts import ShiftDesk
from smartduka_tui.payments.shop_receipts import ShopReceipts
from smartduka_tui.payments.statement import StatementService, statement_service
from smartduka_tui.relay_client import (
    EventOutcome,
    HandledEvent,
    ReceiptPublisher,
    RelayClient,
    RelayShopReceipts,
    TillLink,
    c2b_claimer,
    daraja_check,
)
from smartduka_tui.store.errors import InputError, KeyMissingError, StoreError
from smartduka_tui.store.store import Store, open_till_store

if TYPE_CHECKING:
    from smartduka_tui.manager import ManagerService

Prepare = Callable[[Store], Awaitable[None]]
"""Runs on the opened store before the engine is built (`smartduka pay --simulator` adds its
demo shop there when the folder has none)."""

NotReadyWhy = Literal["no_keys", "no_shop", "bad_setting", "folder"]


class TillNotReady(Exception):
    """The till cannot open; `message` says why and what to do.

    `why` is "no_keys" (the data folder has no keyring yet), "no_shop" (no shop chosen, its
    credentials incomplete, or no till enrolled), "bad_setting" (a value this mode refuses,
    such as the relay URL) or "folder" (the data folder itself: locked by another till,
    unreadable, a wrong key). Faces choose their exit codes from it.
    """

    def __init__(self, message: str, why: NotReadyWhy) -> None:
        super().__init__(message)
        self.message = message
        self.why = why


@dataclass(slots=True, eq=False)
class Till:
    """One opened till: its store, running engine and link, and the desks the faces use."""

    settings: Settings
    clock: Clock
    store: Store
    engine: PaymentEngine
    daraja: DarajaGateway
    """The shop's own gateway, unobserved: what the C2B desk's QR codes and the probe use."""
    link: TillLink
    receipt_checks: StatementService | None
    """Receipt codes and reversals; None without a relay (M-Pesa answers through it) or when
    `open_till` was told not to build them."""
    c2b: C2BDesk | None
    """Direct payments for the checkout's panel; None without a relay to claim them at."""
    shifts: ShiftDesk
    shop_receipts: ShopReceipts | None
    """The shop's receipt index at the relay, the one every part of this till asks; None
    without a relay (also when the feed is not read: `smartduka pull` still asks it)."""
    _manager: ManagerService | None = field(default=None, init=False, repr=False)

    @property
    def connection(self) -> ConnectivityMonitor:
        return self.link.connection

    @property
    def relay(self) -> RelayClient | None:
        return self.link.relay

    @property
    def sales(self) -> SaleDesk:
        return self.engine.sales

    def statement_pull(self) -> StatementPull | None:
        """Pull Transactions now, asking the shop's receipt index (`smartduka pull`); None
        when the shop has no shortcode of its own."""
        return statement_pull_for(self.engine, self.shop_receipts)

    def manager_tools(self) -> ManagerService:
        """The manager tools, built on first use (their modules stay unloaded until then):
        "verify chain" compares against the relay's checkpoint when there is a relay, and
        reversals go through the receipt checks' service."""
        if self._manager is None:
            from smartduka_tui.manager import ManagerService

            source = self.relay.fetch_checkpoint if self.relay is not None else None
            self._manager = ManagerService.for_engine(
                self.engine,
                chain_checkpoint=source,
                reversals=self.receipt_checks,
                shop_receipts=self.shop_receipts,
            )
        return self._manager


@asynccontextmanager
async def open_till(
    settings: Settings,
    *,
    clock: Clock | None = None,
    run_reconciler: bool = True,
    probe_daraja: bool = True,
    receipt_checks: bool = True,
    read_feed: bool = True,
    no_relay_url: str | None = None,
    prepare: Prepare | None = None,
    shop_id: str | None = None,
    till_id: str | None = None,
    relay_transport: httpx.AsyncBaseTransport | None = None,
    daraja_transport: httpx.AsyncBaseTransport | None = None,
    poll_wait_s: float | None = None,
    backoff_base_s: float = 0.5,
    backoff_max_s: float = 30.0,
) -> AsyncIterator[Till]:
    """The configured till, opened; TillNotReady when it cannot open (nothing is left open).

    `no_relay_url` names a relay URL that means "none" (`smartduka pay`'s placeholder);
    `receipt_checks=False` leaves M-Pesa's initiator results on the feed for the app;
    `read_feed=False` leaves the relay's feed unread altogether (no relay client, so no receipt
    checks or C2B desk either): one-shot commands that only ask M-Pesa (`reconcile`, `pull`).
    `relay_transport` and `daraja_transport` carry the till's requests to the relay and to
    Daraja (tests: an app in process, injected faults).
    """
    the_clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        store, parts, relay_url = await _store_and_parts(
            stack,
            settings,
            the_clock,
            prepare,
            shop_id=shop_id,
            till_id=till_id,
            daraja_transport=daraja_transport,
        )
        has_relay = bool(relay_url) and relay_url != no_relay_url
        use_relay = read_feed and has_relay
        receipts = (
            RelayShopReceipts(relay_url, parts.till.till_key.reveal(), transport=relay_transport)
            if has_relay
            else None
        )
        monitor = ConnectivityMonitor(the_clock, relay_used=use_relay)
        engine = parts.engine(store, settings, the_clock, ObservedGateway(parts.gateway, monitor))
        await stack.enter_async_context(
            started(engine, run_reconciler=run_reconciler, shop_receipts=receipts)
        )
        checks = statement_service(engine, receipts) if use_relay and receipt_checks else None
        if checks is not None:
            stack.push_async_callback(checks.aclose)
        desk = _c2b_desk(engine, parts.gateway, relay_url, the_clock) if use_relay else None
        client: RelayClient | None = None
        publisher: ReceiptPublisher | None = None
        if use_relay:
            client = RelayClient(
                engine,
                store,
                parts.till,
                relay_url,
                the_clock,
                monitor=monitor,
                poll_wait_s=float(poll_wait_s or settings.relay.poll_wait_s),
                backoff_base_s=backoff_base_s,
                backoff_max_s=backoff_max_s,
                transport=relay_transport,
                results=checks.accept_result if checks is not None else None,
                listeners=(partial(_stored, desk),) if desk is not None else (),
            )
            client.start()
            stack.push_async_callback(client.close)
            if receipts is not None:
                publisher = ReceiptPublisher(engine, receipts)
                publisher.start()
                stack.push_async_callback(publisher.close)
        probe: DarajaProbe | None = None
        if probe_daraja:
            probe = DarajaProbe(monitor, the_clock, daraja_check(parts.gateway, settings))
            probe.start()
            stack.push_async_callback(probe.stop)
        link = TillLink(monitor, client, probe, publisher)
        shifts = ShiftDesk(store, engine.shop_id, engine.till_id, settings.printer)
        yield Till(
            settings, the_clock, store, engine, parts.gateway, link, checks, desk, shifts, receipts
        )


async def _store_and_parts(
    stack: AsyncExitStack,
    settings: Settings,
    clock: Clock,
    prepare: Prepare | None,
    *,
    shop_id: str | None,
    till_id: str | None,
    daraja_transport: httpx.AsyncBaseTransport | None,
) -> tuple[Store, EngineParts, str]:
    """The opened store (on `stack`), the engine's parts and the relay URL to use, or
    TillNotReady saying why."""
    try:
        store = await stack.enter_async_context(
            open_till_store(settings.data_dir, keyring_file=settings.keyring_file, clock=clock)
        )
        if prepare is not None:
            await prepare(store)
        parts = await engine_parts(
            store,
            settings,
            clock,
            shop_id=shop_id,
            till_id=till_id,
            daraja_transport=daraja_transport,
        )
        try:
            relay_url = settings.relay_url_for(parts.till.relay_url)
        except BaseException:
            await parts.gateway.aclose()
            raise
    except KeyMissingError as error:
        raise TillNotReady(str(error), "no_keys") from None
    except InputError as error:
        raise TillNotReady(str(error), "bad_setting") from None
    except StoreError as error:
        raise TillNotReady(str(error), "folder") from None
    except PaymentRefused as error:
        raise TillNotReady(error.message, "no_shop") from None
    return store, parts, relay_url


def _c2b_desk(
    engine: PaymentEngine, daraja: DarajaGateway, relay_url: str, clock: Clock
) -> C2BDesk:
    """The checkout's direct payments, claimed at this till's relay."""
    claim = c2b_claimer(relay_url, engine.till.till_key.reveal())
    # Dynamic QR needs the shop's own shortcode and credentials; platform shops have neither.
    make_qr = (
        partial(daraja.sale_qr, engine.shop.name) if isinstance(daraja, DirectGateway) else None
    )
    return C2BDesk(engine.store, engine.shop_id, engine.till_id, clock, claim, make_qr=make_qr)


def _stored(desk: C2BDesk, handled: HandledEvent) -> None:
    """The checkout's panel shows a direct payment as soon as the feed has stored it."""
    if handled.event.kind == "c2b" and handled.outcome is EventOutcome.APPLIED:
        desk.arrived()
