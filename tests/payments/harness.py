"""A till for payment-engine tests: a real SQLite store in tmp_path, a shop registered on the
real simulator (fresh shortcode and credentials), an enrolled till whose callbacks come back
through a loopback `CallbackReceiver`, and its engine, opened by the product's composition root
(`open_till`) on a ManualClock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import Settings
from smartduka_tui.demo_shop import add_simulator_shop
from smartduka_tui.model import ShopType
from smartduka_tui.mpesa.callback_path import new_callback_secret
from smartduka_tui.payments.api import (
    CallbackEvent,
    CallbackResult,
    PaymentView,
    ReconcileReport,
)
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.store import Store, database_path, keyring_path
from smartduka_tui.store.vault import create_keyring, load_keyring
from smartduka_tui.till import open_till
from tests.conftest import unique_phone
from tests.payments.receiver import CallbackReceiver
from tests.support.asgi import Served

_shop_numbers = itertools.count(1)
PREFIX = "TS"
KID = "k1"
# The nominated number Pull Transactions registers with, and the simulator's rows per page.
OWNER = "254708374149"
PAGE_SIZE = 2


T = TypeVar("T")


async def drive(clock: ManualClock, work: Awaitable[T], step: float = 0.05) -> T:
    """Run `work`, moving the clock by `step` whenever something sleeps on it (the
    reconciler's query pacing) until the work is done."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.sleep(0.002)
        if clock.sleepers and not task.done():
            clock.advance(step)
    return task.result()


@dataclass
class TillHarness:
    data_dir: Path
    settings: Settings
    clock: ManualClock
    sim: SimulatorControl
    shortcode: str
    shop_id: str
    till_id: str
    callback_secret: str
    receiver: CallbackReceiver
    transport: httpx.AsyncBaseTransport | None = None
    applying: set[asyncio.Task[CallbackResult]] = field(default_factory=set)
    results: list[CallbackResult] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    opened: OpenEngine = field(init=False)

    @property
    def store(self) -> Store:
        return self.opened.store

    @property
    def engine(self) -> PaymentEngine:
        return self.opened.engine

    async def open(self, *, run_reconciler: bool = False) -> PaymentEngine:
        self.opened = await open_engine(
            self.settings,
            self.clock,
            self.shop_id,
            self.till_id,
            transport=self.transport,
            run_reconciler=run_reconciler,
        )
        return self.engine

    async def close(self) -> None:
        await self.settle()
        await self.opened.aclose()

    async def restart(self) -> PaymentEngine:
        await self.close()
        return await self.open()

    async def restart_with_reconciler(self) -> PaymentEngine:
        """Restart with the reconciler running in the background, as the app runs it."""
        await self.close()
        return await self.open(run_reconciler=True)

    def apply_later(self, event: CallbackEvent) -> None:
        """What the relay feed does: apply the event soon, in its own task."""
        task = asyncio.create_task(self.engine.apply_callback(event))
        self.applying.add(task)
        task.add_done_callback(self._applied)

    def _applied(self, task: asyncio.Task[CallbackResult]) -> None:
        self.applying.discard(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is None:
            self.results.append(task.result())
        else:
            self.failures.append(failure)

    async def settle(self) -> None:
        """Wait until every callback handed over so far has been applied, then raise the first
        failure among them not raised yet.

        A failure is kept until a settle raises it: on a busy machine the receiver's task can
        fail before the test reaches `settle` (the simulator answers `advance_clock` only
        after the receiver answered it, and the engine may be done by then), and waiting on
        the running tasks alone would lose it.
        """
        while self.applying:
            await asyncio.wait(list(self.applying))
        if self.failures:
            raise self.failures.pop(0)

    async def waiting(self, sale_ref: str, amount: int) -> tuple[str, PaymentView]:
        """A new phone whose callbacks the simulator drops, and its payment for `sale_ref`:
        PENDING until the test queries it or brings a callback itself."""
        phone = unique_phone()
        await self.sim.set_phone_scenario(phone, drop_callback=True)
        return phone, await self.engine.start_payment(sale_ref, amount, phone)

    async def deliver(self, event: CallbackEvent) -> CallbackResult:
        return await self.engine.apply_callback(event)

    async def advance_sim(self, seconds: float) -> None:
        """Move the simulator's clock (delivering the callbacks now due) and apply them."""
        await self.sim.advance_clock(seconds)
        await self.settle()

    async def reconcile(self) -> ReconcileReport:
        """One reconciler pass, its query pacing moved along on the till's clock."""
        return await drive(self.clock, self.engine.reconcile_once())

    async def view(self, attempt_id: str) -> PaymentView:
        return await self.engine.get(attempt_id)

    async def transitions(self, attempt_id: str) -> list[tuple[str, str, str, str | None]]:
        """(from, to, actor, evidence) of every state change of one attempt, oldest first."""
        entries = await self.store.audit.entries(
            self.shop_id, attempt_id=int(attempt_id), limit=1000
        )
        return [
            (e.detail["from"], e.detail["to"], e.actor.value, e.detail.get("evidence"))
            for e in reversed(entries)
            if e.action == "attempt.transition"
        ]


@dataclass
class OpenEngine:
    """A till opened by `open_till` and held open across a test's steps (a restart closes it
    and opens another)."""

    store: Store
    engine: PaymentEngine
    stack: AsyncExitStack

    async def aclose(self) -> None:
        await self.stack.aclose()


async def open_engine(
    settings: Settings,
    clock: ManualClock,
    shop_id: str,
    till_id: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    run_reconciler: bool = False,
) -> OpenEngine:
    """The till of `settings.data_dir` for `shop_id`, opened as the till process opens it: its
    store (the folder's lock taken), a started engine and its gateway (through `transport` when
    given). The relay here is a bare callback receiver, with no feed or receipt index to read,
    so the till runs without a relay link; nor does it probe Daraja (tests bring the answers)."""
    stack = AsyncExitStack()
    try:
        till = await stack.enter_async_context(
            open_till(
                settings,
                clock=clock,
                run_reconciler=run_reconciler,
                probe_daraja=False,
                read_feed=False,
                no_relay_url=settings.relay.url,
                shop_id=shop_id,
                till_id=till_id,
                daraja_transport=transport,
            )
        )
    except BaseException:
        await stack.aclose()
        raise
    return OpenEngine(till.store, till.engine, stack)


async def register_shop(
    store: Store,
    sim: SimulatorControl,
    *,
    relay_url: str,
    callback_secret: str,
    kind: ShopType = ShopType.PAYBILL,
    shop_id: str | None = None,
    till_id: str = "till1",
    sim_settings: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """A fresh shortcode on the simulator and the matching shop and till in `store`."""
    shop = await add_simulator_shop(
        store,
        sim,
        shop_id=shop_id or (lambda shortcode: f"shop{shortcode}n{next(_shop_numbers)}"),
        name="Test shop",
        prefix=PREFIX,
        till_id=till_id,
        relay_url=relay_url,
        kind=kind,
        callback_kid=KID,
        callback_secret=callback_secret,
        sim_settings=sim_settings,
    )
    return shop.shop_id, shop.shortcode


async def sim_now_clock(url: str) -> ManualClock:
    """A till clock that starts at the simulator's time (M-Pesa's and the till's agree)."""
    async with SimulatorControl(url) as sim:
        return ManualClock((await sim.clock()).now)


def till_settings(
    data_dir: Path, simulator_url: str, relay_url: str, read_timeout_s: float = 5.0, **extra: Any
) -> Settings:
    return Settings(
        data_dir=data_dir,
        daraja={
            "base_url": simulator_url,
            "read_timeout_s": read_timeout_s,
            "connect_timeout_s": 2.0,
            # No query backoff inside one call: it would sleep on the ManualClock. The
            # reconciler asks again on its next pass instead.
            "query_retries": 0,
        },
        relay={"url": relay_url},
        **extra,
    )


@asynccontextmanager
async def till(
    tmp_path: Path,
    simulator_url: str,
    *,
    apply_callbacks: bool = True,
    daraja_url: str | None = None,
    sim_settings: dict[str, Any] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: ManualClock | None = None,
    **settings: Any,
) -> AsyncIterator[TillHarness]:
    """A till on the simulator at `simulator_url`; with `apply_callbacks` each callback that
    reaches the receiver is applied to the engine at once, as the relay feed will."""
    data_dir = tmp_path / "till"
    data_dir.mkdir()
    create_keyring(keyring_path(data_dir))
    clock = clock or ManualClock()
    callback_secret = new_callback_secret()
    receiver = CallbackReceiver({KID: callback_secret}, clock)
    async with Served(receiver) as served, SimulatorControl(simulator_url) as sim:
        config = till_settings(data_dir, daraja_url or simulator_url, served.base_url, **settings)
        store = await Store.open(
            database_path(data_dir), clock=clock, keyring=load_keyring(keyring_path(data_dir))
        )
        try:
            shop_id, shortcode = await register_shop(
                store,
                sim,
                relay_url=served.base_url,
                callback_secret=callback_secret,
                sim_settings=sim_settings,
            )
        finally:
            await store.close()
        harness = TillHarness(
            data_dir=data_dir,
            settings=config.model_copy(update={"shop_id": shop_id}),
            clock=clock,
            sim=sim,
            shortcode=shortcode,
            shop_id=shop_id,
            till_id="till1",
            callback_secret=callback_secret,
            receiver=receiver,
            transport=transport,
        )
        await harness.open()
        if apply_callbacks:
            receiver.handler = harness.apply_later
        try:
            yield harness
        finally:
            await harness.close()
