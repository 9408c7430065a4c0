"""The relay client's handling of events it cannot apply, and of refusals at the relay.

The till engine, its SQLite store and the relay are real; the fault is real too: the attempt's
row refuses every write (a SQLite trigger, as a damaged or locked row would), so applying its
callback fails however often it is tried.
"""

from __future__ import annotations

import json
import random
import socket
import sqlite3
from pathlib import Path

import httpx

from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.connectivity import Reachability
from smartduka_tui.model import AttemptState, ProblemKind
from smartduka_tui.mpesa.callback_path import sign
from smartduka_tui.payments.api import CallbackOutcome
from smartduka_tui.relay_client import EVENT_KEY, EventOutcome, HandledEvent, RelayClient
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.store import database_path
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle, eventually
from tests.integration.test_pay_e2e import direct_till
from tests.support.daraja import PAYLOADS


async def test_an_event_that_cannot_be_applied_becomes_a_problem_and_blocks_nothing(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    stuck_phone, fine_phone = unique_phone(), unique_phone()
    await sim.set_phone_scenario(stuck_phone, callback_delay_s=200)
    await sim.set_phone_scenario(fine_phone, callback_delay_s=201)
    async with till.engine() as engine:
        stuck = await engine.start_payment("BAD1", 70, stuck_phone)
        fine = await engine.start_payment("OK1", 71, fine_phone)
        assert stuck.state is AttemptState.PENDING and fine.state is AttemptState.PENDING
        stuck_attempt = await engine.store.attempts.get(till.shop_id, int(stuck.attempt_id))
        assert stuck_attempt is not None
        with sqlite3.connect(database_path(till.data_dir)) as conn:
            conn.execute(
                "CREATE TRIGGER stuck_row BEFORE UPDATE ON attempts"
                f" WHEN OLD.attempt_ref = '{stuck_attempt.attempt_ref}'"
                " BEGIN SELECT RAISE(ABORT, 'row cannot be written'); END"
            )
        await sim.advance_clock(202)  # both customers pay; the stuck one's callback comes first
        client = RelayClient(
            engine, engine.store, engine.till, relay.url, SystemClock(), retry_delay_s=0.01
        )
        seen: list[HandledEvent] = []
        client.on_event(seen.append)
        try:
            assert await client.drain() == 2
        finally:
            await client.close()
        assert [(h.event.attempt_ref, h.outcome) for h in seen] == [
            (stuck_attempt.attempt_ref, EventOutcome.PROBLEM),
            (seen[1].event.attempt_ref, EventOutcome.APPLIED),
        ]
        assert seen[1].callback_outcome is CallbackOutcome.APPLIED
        assert (await engine.get(fine.attempt_id)).state is AttemptState.COMPLETED
        assert (await engine.get(stuck.attempt_id)).state is AttemptState.PENDING
    (problem,) = await till.problems()
    assert problem.kind is ProblemKind.UNAPPLIED_EVENT and problem.till_id == till.till_id
    assert problem.detail[EVENT_KEY] == seen[0].event.id
    assert problem.detail["attempt_ref"] == stuck_attempt.attempt_ref
    assert problem.detail["tries"] == 3 and "row cannot be written" in problem.detail["reason"]
    states = relay.rows("SELECT state FROM events WHERE till_id = ? ORDER BY id", till.till_id)
    assert states == [("acked",), ("acked",)], "acknowledged, so it is not delivered again"


async def test_a_signed_callback_refused_for_its_source_becomes_a_problem_once(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    e = till.enrolment
    path = sign(e["callback_secret"], e["shop_id"], e["till_id"], "forgedref123", "k1").path()
    body = (PAYLOADS / "callback_success.json").read_bytes()
    async with httpx.AsyncClient(base_url=relay.url) as client:
        # Through the trusted proxy (127.0.0.1), from an address not on the allowlist.
        refused = await client.post(path, content=body, headers={"X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 403
    async with till.engine() as engine:
        for _ in range(2):  # a second reading finds nothing new and records nothing twice
            consumer = RelayClient(engine, engine.store, engine.till, relay.url, SystemClock())
            seen: list[HandledEvent] = []
            consumer.on_event(seen.append)
            try:
                await consumer.drain()
            finally:
                await consumer.close()
            assert [h.outcome for h in seen] in ([EventOutcome.SECURITY], [])
    (problem,) = await till.problems()
    assert problem.kind is ProblemKind.SUSPICIOUS_PATTERN
    assert problem.detail["pattern"] == "callback_refused_at_relay"
    assert problem.detail["reason"] == "source_not_allowed"
    assert problem.detail["source"] == "203.0.113.9"
    assert problem.detail["attempt_ref"] == "forgedref123"
    assert e["callback_secret"] not in json.dumps(problem.detail)
    assert await till.attempts() == [], "a refused callback moves no money state"


async def test_the_client_backs_off_with_jitter_on_the_injected_clock(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    """A relay that cannot be reached: each retry waits longer (between half and all of the
    doubling step, capped), on the injected clock, and the signal says the relay is down."""
    till = await direct_till(tmp_path, relay, sim)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = ManualClock()
    async with till.engine() as engine:
        client = RelayClient(
            engine,
            engine.store,
            engine.till,
            dead,
            clock,
            backoff_base_s=1.0,
            backoff_max_s=8.0,
            rng=random.Random(7),
        )
        steps = [client.backoff(n) for n in range(1, 7)]
        for n, delay in enumerate(steps, start=1):
            step = min(8.0, 2.0 ** (n - 1))
            assert step / 2 <= delay <= step
        assert client.backoff(1, at_least=5.0) == 5.0, "a relay's Retry-After is honoured"
        client.start()
        try:
            for expected in (1, 2, 3):

                async def parked(n: int = expected) -> bool:
                    return client.failures == n and clock.sleepers == 1

                assert await eventually(parked), f"failure {expected} waits on the clock"
                assert client.relay_state is Reachability.UNREACHABLE
                clock.advance(8.0)
        finally:
            await client.close()
