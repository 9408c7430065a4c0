"""Outages end to end: the relay down during a payment, the till down while callbacks arrive,
and the connection state the app shows when the relay goes away and comes back."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from smartduka_tui.clock import SystemClock
from smartduka_tui.connectivity import ConnectionState, Reachability
from smartduka_tui.model import Actor, AttemptFlag, AttemptState
from smartduka_tui.payments.api import CallbackOutcome
from smartduka_tui.relay_client import EventOutcome, HandledEvent, RelayClient
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.records import AuditEntry
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle, eventually, start_relay
from tests.integration.test_pay_e2e import direct_till


async def read_sent_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return await asyncio.to_thread(proc.stdout.readline)


def completions(moves: list[AuditEntry]) -> list[AuditEntry]:
    return [e for e in moves if e.detail["to"] == AttemptState.COMPLETED.value]


async def test_relay_down_mid_payment_completes_by_query_and_the_late_callback_changes_nothing(
    tmp_path: Path, relay_workdir: Path, sim: SimulatorControl
) -> None:
    own = start_relay(relay_workdir)
    try:
        till = await direct_till(tmp_path, own, sim)
        phone = unique_phone()
        # The customer pays at once, but the callback comes two minutes after M-Pesa knows.
        await sim.set_phone_scenario(phone, late_callback_s=120)
        proc = till.pay("OUT1", 90, phone)
        assert (await read_sent_line(proc)).startswith("sent:")
        own.server.kill()
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        assert "state: COMPLETED" in out and "receipt:" not in out
        (attempt,) = await till.attempts()
        assert attempt.receipt_number is None
        (paid,) = completions(await till.transitions(attempt.id))
        assert paid.actor is Actor.QUERY
        assert [r for r in await sim.requests(phone=phone) if "stkpushquery" in r.path]

        own.server.restart()
        await sim.advance_clock(121)
        (delivery,) = await sim.callbacks(phone=phone)
        assert delivery.status == 200, "the relay stored the late callback"
        async with till.engine() as engine:
            client = RelayClient(engine, engine.store, engine.till, own.url, SystemClock())
            seen: list[HandledEvent] = []
            client.on_event(seen.append)
            try:
                assert await client.drain() == 1
            finally:
                await client.close()
        assert [h.outcome for h in seen] == [EventOutcome.APPLIED]
        assert seen[0].callback_outcome in (CallbackOutcome.APPLIED, CallbackOutcome.NO_CHANGE)
        (after,) = await till.attempts()
        assert after.state is AttemptState.COMPLETED
        items = json.loads(delivery.payload)["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        receipt = next(i["Value"] for i in items if i["Name"] == "MpesaReceiptNumber")
        assert after.receipt_number == receipt, "the late callback only brought the receipt"
        assert not after.flags & (AttemptFlag.LATE | AttemptFlag.DUPLICATE_PAYMENT)
        assert len(completions(await till.transitions(attempt.id))) == 1, "paid once"
        assert await till.problems() == []
    finally:
        own.server.stop()


async def test_a_till_down_while_callbacks_arrive_applies_each_once_when_it_restarts(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phones = [unique_phone() for _ in range(3)]
    for phone in phones:
        await sim.set_phone_scenario(phone, callback_delay_s=300)
    for number, phone in enumerate(phones):
        proc = till.pay(f"DOWN{number}", 100 + number, phone)
        assert (await read_sent_line(proc)).startswith("sent:")
        proc.kill()  # the till dies with its payment waiting for the callback
        await asyncio.to_thread(proc.communicate)
    assert [a.state for a in await till.attempts()] == [AttemptState.PENDING] * 3
    # The customers pay; the callbacks reach the relay while no till runs.
    await sim.advance_clock(301)
    sent = [await sim.callbacks(phone=phone) for phone in phones]
    assert [d[0].status for d in sent] == [200] * 3

    async with till.opened() as opened:
        engine = opened.engine

        async def none_open() -> bool:
            return not await engine.live_attempts()

        assert await eventually(none_open)
    attempts = await till.attempts()
    assert [a.state for a in attempts] == [AttemptState.COMPLETED] * 3
    for attempt in attempts:
        moves = completions(await till.transitions(attempt.id))
        assert len(moves) == 1 and moves[0].actor is Actor.CALLBACK
        assert attempt.receipt_number
    assert await till.problems() == []
    states = relay.rows("SELECT state FROM events WHERE till_id = ?", till.till_id)
    assert sorted(s for (s,) in states) == ["acked"] * 3


async def test_connection_signal_flips_as_the_relay_dies_and_returns_and_the_reconciler_catches_up(
    tmp_path: Path, relay_workdir: Path, sim: SimulatorControl
) -> None:
    own = start_relay(relay_workdir)
    try:
        till = await direct_till(tmp_path, own, sim)
        seen: list[ConnectionState] = []
        async with till.opened(
            run_reconciler=True,
            backoff_base_s=0.1,
            backoff_max_s=0.5,
            timings={"reconcile_interval_s": 600, "reconcile_min_age_s": 0},
        ) as opened:
            engine, link = opened.engine, opened.link
            link.connection.subscribe(seen.append)

            async def relay_is(state: Reachability) -> bool:
                return link.connection.current().relay is state

            assert await eventually(lambda: relay_is(Reachability.REACHABLE))
            own.server.kill()
            assert await eventually(lambda: relay_is(Reachability.UNREACHABLE), timeout=10)

            # While the relay is away a customer pays, and the callback is lost for good.
            phone = unique_phone()
            await sim.set_phone_scenario(phone, drop_callback=True)
            view = await engine.start_payment("GONE1", 60, phone)
            assert link.connection.current().daraja is Reachability.REACHABLE, "a real push"
            await asyncio.sleep(0.5)
            assert (await engine.get(view.attempt_id)).state is AttemptState.PENDING

            own.server.restart()
            assert await eventually(lambda: relay_is(Reachability.REACHABLE), timeout=15)

            async def settled() -> bool:
                return (await engine.get(view.attempt_id)).state is AttemptState.COMPLETED

            assert await eventually(settled, timeout=15), "the reconnect pass asked M-Pesa"
        relays = [s.relay for s in seen]
        assert relays[relays.index(Reachability.UNREACHABLE) :].count(Reachability.REACHABLE) >= 1
        assert Reachability.UNREACHABLE in relays
    finally:
        own.server.stop()
