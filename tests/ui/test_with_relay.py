"""The cashier app on a till wired as in production: the real relay process, the relay client
reading this till's feed, the Daraja probe and the engine's own calls reporting the connection
state the app shows. The relay is this test's own process, so it can be stopped and started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from smartduka_tui.clock import SystemClock
from smartduka_tui.connectivity import Reachability
from smartduka_tui.payments.api import Stage
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.ui.app import SmartDukaApp, make_app
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.waiting import OFFLINE_NOTE
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from smartduka_tui.ui.widgets.offline_banner import RELAY_DOWN, OfflineBanner
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle, make_till, own_shortcode, start_relay
from tests.support.processes import ServerProcess
from tests.ui.conftest import SIZE, wait_for_screen, wait_until
from tests.ui.test_flows import start_sale, text_of

ANSWER_AFTER_S = 30


async def push_answered(pilot: Any, waiting: Any) -> None:
    """Wait until the simulator has answered the push. The waiting screen shows as soon as the
    attempt is stored, before its push has left: a clock moved before the push arrives leaves
    its answer due a full delay later (30 s of real time, past the wait for it)."""
    await wait_until(pilot, lambda: waiting.view.stage is not Stage.SENDING, "the push answered")


@asynccontextmanager
async def till_app(
    tmp_path: Path, simulator: ServerProcess, relay: RelayHandle
) -> AsyncIterator[tuple[SmartDukaApp, SimulatorControl]]:
    async with SimulatorControl(simulator.base_url) as sim:
        shortcode, creds = await own_shortcode(sim)
        enrolment = await relay.enrol("shop", "add", "UI relay shop")
        till = await make_till(
            tmp_path / "till",
            simulator.base_url,
            enrolment,
            prefix="UI",
            shortcode=shortcode,
            creds=creds,
        )
        clock = SystemClock()
        async with till.opened(clock=clock, run_reconciler=True, probe_daraja=True) as opened:
            engine, link = opened.engine, opened.link
            services = AppServices(
                payments=engine,
                clock=clock,
                identity=TillIdentity(engine.shop_id, engine.till_id, "Relay Duka"),
                connection=link.connection,
            )
            app = make_app(engine.settings, services, options=UiOptions(cursor_blink=False))
            yield app, sim


async def test_paid_through_the_relay_then_relay_down_during_a_wait(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        async with (
            till_app(tmp_path, simulator, relay) as (app, sim),
            app.run_test(size=SIZE) as pilot,
        ):
            await wait_until(
                pilot, lambda: app.connection.relay is Reachability.REACHABLE, "relay up"
            )
            # A payment whose callback comes through the relay's feed.
            phone = unique_phone()
            await sim.set_phone_scenario(phone, callback_delay_s=ANSWER_AFTER_S)
            await push_answered(pilot, await start_sale(pilot, 150, phone))
            await sim.advance_clock(ANSWER_AFTER_S + 1)
            paid: Any = await wait_for_screen(pilot, SuccessScreen)
            assert paid.view.receipt and paid.view.stage is Stage.PAID
            await pilot.press("enter")

            # The relay goes away while the next customer is on the prompt.
            other = unique_phone()
            await sim.set_phone_scenario(other, callback_delay_s=ANSWER_AFTER_S)
            waiting = await start_sale(pilot, 160, other)
            await push_answered(pilot, waiting)
            relay.server.kill()
            await wait_until(
                pilot, lambda: app.connection.relay is Reachability.UNREACHABLE, "relay down"
            )
            banner = app.screen.query_one(OfflineBanner)
            assert banner.display and str(banner.content) == RELAY_DOWN
            assert text_of(waiting, "#offline-note") == OFFLINE_NOTE
            assert waiting.check_action("retry", ()) is None
            # The customer pays; the callback has nowhere to go.
            await sim.advance_clock(ANSWER_AFTER_S + 1)
            relay.server.restart(keep_port=True)
            # Back: the till checks with M-Pesa at once and shows the payment (the relay
            # client's reconnect backoff has jitter, hence the longer bound).
            success: Any = await wait_for_screen(pilot, SuccessScreen, timeout=60)
            assert success.view.phone == other
            assert success.view.stage in (Stage.PAID_RECEIPT_TO_FOLLOW, Stage.PAID)
            assert not app.screen.query_one(OfflineBanner).display
    finally:
        relay.server.stop()
