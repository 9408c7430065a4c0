"""The reconciler: lost callbacks, its pace, its loop, start-up and reconnect passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import PaymentView, ReconcileReport
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[bool]], clock: ManualClock, timeout: float = 10.0
) -> None:
    """Wait (bounded, real time) for background work to make `probe` true, moving the till's
    clock a little whenever the work sleeps on it (query pacing)."""
    async with asyncio.timeout(timeout):
        while not await probe():
            await asyncio.sleep(0.02)
            if clock.sleepers:
                clock.advance(0.05)


# What each phone does, and the state the evidence table says it must end in when every
# callback is lost and only STK queries tell.
LOST_CALLBACK_CASES: list[tuple[dict[str, Any], AttemptState]] = [
    ({}, AttemptState.COMPLETED),
    ({"result_code": 1032}, AttemptState.FAILED),
    ({"result_code": 1}, AttemptState.FAILED),
    ({"result_code": 2001}, AttemptState.FAILED),
    ({"unanswered": True}, AttemptState.FAILED),  # 1037 once the (short) prompt timeout passes
    ({"result_code": 4242}, AttemptState.EXPIRED),  # a code we do not know never settles by query
    ({"query_anomaly": "stuck_pending"}, AttemptState.EXPIRED),
]


async def test_lost_callbacks_every_attempt_still_ends_correctly(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(
        tmp_path,
        simulator.base_url,
        sim_settings={"prompt_timeout_s": 10},
        limits={"queries_per_second": 50},
    ) as h:
        started = []
        for n, (scenario, expected) in enumerate(LOST_CALLBACK_CASES):
            phone = unique_phone()
            await h.sim.set_phone_scenario(phone, drop_callback=True, **scenario)
            view = await h.engine.start_payment(f"LC{n}", 10 + n, phone)
            started.append((view, expected))
        await h.advance_sim(11)
        h.clock.advance(31)
        first = await h.reconcile()
        assert first.queried == len(LOST_CALLBACK_CASES)
        assert first.settled == 5 and first.still_pending == 2
        h.clock.advance(300)
        last = await h.reconcile()
        assert last.expired == 2
        for view, expected in started:
            final = await h.view(view.attempt_id)
            assert final.state is expected, (final.phone, final.result_code)
            truth = await h.sim.transactions(checkout_request_id=view.checkout_request_id)
            if expected is AttemptState.COMPLETED:
                assert str(truth[0].result_code) == "0"
        assert not h.receiver.events, "no callback was delivered"
        assert await h.engine.awaiting_count() == 0


async def test_queries_are_paced_per_shortcode(tmp_path: Path, simulator: ServerProcess) -> None:
    async with till(
        tmp_path,
        simulator.base_url,
        limits={"queries_per_second": 5, "reconcile_concurrency": 3},
    ) as h:
        views = []
        for n in range(12):
            phone = unique_phone()
            await h.sim.set_phone_scenario(phone, unanswered=True, drop_callback=True)
            views.append(await h.engine.start_payment(f"PQ{n}", 10, phone))
        h.clock.advance(31)
        before = h.clock.monotonic()
        report: ReconcileReport = await h.reconcile()
        assert report.queried == 12 and report.still_pending == 12
        # Evenly spaced at 5 a second on the till's clock: 11 gaps of 0.2 s.
        assert h.clock.monotonic() - before >= 11 * 0.2 - 1e-6
        queries = [
            r for r in await h.sim.requests(shortcode=h.shortcode) if "stkpushquery" in r.path
        ]
        assert len(queries) == 12


async def test_background_loop_settles_lost_callbacks_each_interval(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        await h.restart_with_reconciler()
        _, view = await h.waiting("BG1", 10)
        await h.advance_sim(2)
        await wait_for_sleep(h)
        h.clock.advance(120)

        async def paid() -> bool:
            return (await h.view(view.attempt_id)).state is AttemptState.COMPLETED

        await eventually(paid, h.clock)


async def wait_for_sleep(h: TillHarness) -> None:
    async with asyncio.timeout(10):
        while not h.clock.sleepers:
            await asyncio.sleep(0.01)


async def test_start_up_pass_settles_what_was_open_at_the_last_stop(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, drop_callback=True, result_code=1032)
        view = await h.engine.start_payment("SU1", 10, phone)
        await h.advance_sim(2)
        h.clock.advance(31)
        await h.restart_with_reconciler()

        async def failed() -> bool:
            return (await h.view(view.attempt_id)).state is AttemptState.FAILED

        await eventually(failed, h.clock)


async def test_reconnect_and_stop_waiting_wake_the_reconciler(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        await h.restart_with_reconciler()
        phones = [unique_phone(), unique_phone()]
        views = []
        for n, phone in enumerate(phones):
            await h.sim.set_phone_scenario(phone, drop_callback=True)
            views.append(await h.engine.start_payment(f"RW{n}", 10, phone))
        await h.advance_sim(2)
        await wait_for_sleep(h)
        h.clock.advance(31)  # old enough to query, long before the next interval
        await h.engine.on_reconnected()

        async def both_paid() -> bool:
            states = [(await h.view(v.attempt_id)).state for v in views]
            return states == [AttemptState.COMPLETED, AttemptState.COMPLETED]

        await eventually(both_paid, h.clock)


async def test_stop_waiting_is_audited_and_changes_no_state(shop_till: TillHarness) -> None:
    h = shop_till
    _, view = await h.waiting("SW1", 10)
    seen: list[PaymentView] = []
    h.engine.add_listener(seen.append)
    after = await h.engine.stop_waiting(view.attempt_id)
    assert after.state is AttemptState.PENDING and after.handed_to_reconciler
    assert seen and seen[-1].handed_to_reconciler
    entries = await h.store.audit.entries(h.shop_id, attempt_id=int(view.attempt_id))
    assert entries[0].action == "attempt.handed_to_reconciler"
    assert entries[0].actor.value == "cashier"


async def test_check_now_asks_mpesa_at_once(shop_till: TillHarness) -> None:
    h = shop_till
    _, view = await h.waiting("CN1", 10)
    assert (await h.engine.check_now(view.attempt_id)).state is AttemptState.PENDING
    await h.advance_sim(2)
    checked = await h.engine.check_now(view.attempt_id)
    assert checked.state is AttemptState.COMPLETED and checked.receipt_pending


async def queries_for(h: TillHarness, checkout_request_id: str | None) -> int:
    return sum(
        1
        for r in await h.sim.requests(phone=None)
        if "stkpushquery" in r.path and r.checkout_request_id == checkout_request_id
    )


async def test_one_query_when_the_countdown_ends(tmp_path: Path, simulator: ServerProcess) -> None:
    """Issue #11 case 6: the screen says "Checking with M-Pesa" at the end of the countdown,
    so M-Pesa is asked then (on the injected clock), not at the next 2-minute pass."""
    async with till(tmp_path, simulator.base_url) as h:
        await h.restart_with_reconciler()
        _, view = await h.waiting("CD1", 10)
        await h.advance_sim(2)  # paid; the callback is lost
        await wait_for_sleep(h)
        h.clock.advance(59)
        await wait_for_sleep(h)
        assert await queries_for(h, view.checkout_request_id) == 0, "not before the end"
        h.clock.advance(1)

        async def paid() -> bool:
            return (await h.view(view.attempt_id)).state is AttemptState.COMPLETED

        await eventually(paid, h.clock)
        assert await queries_for(h, view.checkout_request_id) == 1


async def test_start_up_asks_about_every_live_attempt_whatever_its_age(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        _, view = await h.waiting("SU2", 10)
        await h.advance_sim(2)
        h.clock.advance(5)  # far younger than the 30 s a regular pass waits for
        await h.restart_with_reconciler()

        async def paid() -> bool:
            return (await h.view(view.attempt_id)).state is AttemptState.COMPLETED

        await eventually(paid, h.clock)
        assert await queries_for(h, view.checkout_request_id) == 1
