"""A Hypothesis state machine over the payment engine (DESIGN.md section 3).

Rules: start payments with scripted phones (pay, fail, unknown codes, lost, duplicated, early
or late callbacks, pushes whose outcome is unknown), deliver callbacks in order, reversed or
twice, forge callbacks (wrong amount, unknown code, another shop or till, no attempt), late
successes, reconciler and expiry passes, cashier checks and retries, clock advances, restarts
and crashes right after an attempt was written.

Invariants after every step: every transition is a row of the evidence table (written out here,
independently of `machine.TABLE`); COMPLETED is never left; a sale has at most one COMPLETED
attempt unless the extra ones are flagged as duplicate payments; a success after FAILED or
EXPIRED is flagged late; every transition is in the audit log, chained from the attempt's
first state to its current one; the audit chain verifies.

The simulator runs in-process (httpx.ASGITransport) on a ManualClock, since the point here is
logic; its callbacks reach a loopback receiver and wait in a queue, so the machine decides when
and in which order they are applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import AttemptFlag, AttemptState
from smartduka_tui.mpesa.callback_path import new_callback_secret
from smartduka_tui.payments.api import CallbackEvent, PaymentRefused
from smartduka_tui.payments.service import PaymentEngine, idempotency_key
from smartduka_tui.simulator.app import create_app
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.records import NewAttempt
from smartduka_tui.store.store import Store, database_path, keyring_path
from smartduka_tui.store.vault import create_keyring, load_keyring
from tests.conftest import unique_phone
from tests.payments.bodies import failure_body, success_body
from tests.payments.harness import (
    KID,
    OpenEngine,
    drive,
    open_engine,
    register_shop,
    till_settings,
)
from tests.payments.receiver import CallbackReceiver
from tests.support.asgi import Served

SIM_URL = "http://simulator.invalid"

# DESIGN.md section 3's evidence table as (from, to) pairs.
EVIDENCE_TABLE: frozenset[tuple[AttemptState, AttemptState]] = frozenset(
    {
        (AttemptState.CREATED, AttemptState.PENDING),  # push accepted
        (AttemptState.CREATED, AttemptState.FAILED),  # push definitely refused
        (AttemptState.CREATED, AttemptState.UNKNOWN),  # push outcome unknown, or found at start-up
        (
            AttemptState.PENDING,
            AttemptState.COMPLETED,
        ),  # verified success (callback, confirmed callback, query)
        (
            AttemptState.CREATED,
            AttemptState.NEEDS_REVIEW,
        ),  # unknown code, mismatch, contradicted confirmation
        (AttemptState.PENDING, AttemptState.NEEDS_REVIEW),
        (AttemptState.UNKNOWN, AttemptState.NEEDS_REVIEW),
        (AttemptState.PENDING, AttemptState.FAILED),  # known failure by callback or query
        (AttemptState.UNKNOWN, AttemptState.FAILED),  # known failure by callback
        (AttemptState.PENDING, AttemptState.EXPIRED),  # expiry after a last query
        (AttemptState.UNKNOWN, AttemptState.EXPIRED),
        (AttemptState.FAILED, AttemptState.COMPLETED),  # late payment
        (AttemptState.EXPIRED, AttemptState.COMPLETED),
        # A success nothing ties to the attempt (its push response was lost): a manager looks.
        (AttemptState.FAILED, AttemptState.NEEDS_REVIEW),
        (AttemptState.EXPIRED, AttemptState.NEEDS_REVIEW),
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """What a phone does with a push: its answer, how the callback travels, what the push
    response and the STK query say (combinations the simulator accepts)."""
    answer = draw(st.sampled_from(["pays", 1032, 1, 4242, "unanswered"]))
    delivery = draw(st.sampled_from(["normal", "drop", "twice", "before_response", "late"]))
    scenario: dict[str, Any] = {}
    if answer == "unanswered":
        scenario["unanswered"] = True
        if delivery == "before_response":
            delivery = "normal"
    elif answer != "pays":
        scenario["result_code"] = answer
    deliveries: dict[str, dict[str, Any]] = {
        "normal": {},
        "drop": {"drop_callback": True},
        "twice": {"duplicates": 1},
        "before_response": {"callback_before_response": True},
        "late": {"late_callback_s": 400},
    }
    scenario.update(deliveries[delivery])
    if draw(st.booleans()) and delivery != "before_response":
        scenario["push_anomaly"] = "gateway_error"
    query = draw(st.sampled_from(["normal", "stuck", "says_cancelled"]))
    if query == "stuck":
        scenario["query_anomaly"] = "stuck_pending"
    elif query == "says_cancelled":
        scenario["query_result_code"] = 1032
    return scenario


SALES = [f"H{n}" for n in range(5)]


class Shared:
    """What every example shares: one loop, one in-process simulator, one receiver."""

    loop: asyncio.AbstractEventLoop
    transport: httpx.ASGITransport
    sim: SimulatorControl
    receiver: CallbackReceiver
    served: Served
    secret: str


class EngineMachine(RuleBasedStateMachine):
    shared: ClassVar[Shared]

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sd-stateful-"))
        self.clock = ManualClock()
        self.phones = [unique_phone() for _ in range(3)]
        self.queue: list[CallbackEvent] = []
        self.ever_completed: set[int] = set()
        self.engine: PaymentEngine | None = None
        self.store: Store | None = None
        self.opened: OpenEngine | None = None

    def run(self, coro: Any) -> Any:
        return self.shared.loop.run_until_complete(coro)

    # ------------------------------------------------------------------ setup

    @initialize(confirm=st.booleans())
    def open_till(self, confirm: bool) -> None:
        self.confirm = confirm
        data_dir = self.tmp / "till"
        data_dir.mkdir()
        create_keyring(keyring_path(data_dir))
        self.data_dir = data_dir

        async def setup() -> None:
            store = await Store.open(
                database_path(data_dir),
                clock=self.clock,
                keyring=load_keyring(keyring_path(data_dir)),
            )
            try:
                self.shop_id, _ = await register_shop(
                    store,
                    self.shared.sim,
                    relay_url=self.shared.served.base_url,
                    callback_secret=self.shared.secret,
                )
            finally:
                await store.close()
            self.settings = till_settings(
                data_dir,
                SIM_URL,
                self.shared.served.base_url,
                shop_id=self.shop_id,
                confirm_callbacks_by_query=confirm,
                limits={"queries_per_second": 1000, "pushes_per_minute": 1000},
            )
            await self.open_engine()

        self.run(setup())

    async def open_engine(self) -> None:
        self.opened = await open_engine(
            self.settings,
            self.clock,
            self.shop_id,
            "till1",
            transport=self.shared.transport,
        )
        self.store, self.engine = self.opened.store, self.opened.engine

    def teardown(self) -> None:
        if self.opened is not None:
            self.run(self.opened.aclose())
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def e(self) -> PaymentEngine:
        assert self.engine is not None
        return self.engine

    # ------------------------------------------------------------------ helpers

    async def take_callbacks(self) -> None:
        mine = [ev for ev in self.shared.receiver.events if ev.shop_id == self.shop_id]
        self.shared.receiver.events[:] = [
            ev for ev in self.shared.receiver.events if ev.shop_id != self.shop_id
        ]
        self.queue.extend(mine)

    async def attempts(self) -> list[Any]:
        assert self.store is not None
        page = await self.store.attempts.history(self.shop_id, limit=1000)
        return list(page.items)

    # ------------------------------------------------------------------ rules

    @rule(
        sale=st.sampled_from(SALES),
        phone=st.integers(0, 2),
        amount=st.sampled_from([10, 20]),
        scenario=scenarios(),
    )
    def start(self, sale: str, phone: int, amount: int, scenario: dict[str, Any]) -> None:
        async def go() -> None:
            await self.shared.sim.set_phone_scenario(self.phones[phone], **scenario)
            with contextlib.suppress(PaymentRefused):
                await self.e.start_payment(sale, amount, self.phones[phone])
            await self.take_callbacks()

        self.run(go())

    @rule(seconds=st.sampled_from([1, 2, 31, 61, 121, 301, 401]))
    def time_passes(self, seconds: int) -> None:
        async def go() -> None:
            self.clock.advance(seconds)
            await self.shared.sim.advance_clock(seconds)
            await self.take_callbacks()

        self.run(go())

    @precondition(lambda self: bool(self.queue))
    @rule(order=st.sampled_from(["in_order", "reversed", "twice"]))
    def deliver_callbacks(self, order: str) -> None:
        events = list(self.queue)
        self.queue.clear()
        if order == "reversed":
            events.reverse()
        if order == "twice":
            events = events + events

        async def go() -> None:
            for event in events:
                await self.e.apply_callback(event)

        self.run(go())

    @rule(
        which=st.integers(0, 50),
        kind=st.sampled_from(
            ["wrong_amount", "unknown_code", "other_shop", "other_till", "no_attempt", "late"]
        ),
    )
    def forged_or_odd_callback(self, which: int, kind: str) -> None:
        async def go() -> None:
            attempts = await self.attempts()
            if not attempts:
                return
            attempt = attempts[which % len(attempts)]
            checkout = attempt.checkout_request_id or "ws_CO_unknown"
            fields = {
                "attempt_ref": attempt.attempt_ref,
                "shop_id": self.shop_id,
                "till_id": "till1",
            }
            body = success_body(checkout, attempt.amount, attempt.phone, receipt="FRG0000001")
            if kind == "wrong_amount":
                body = success_body(checkout, attempt.amount + 1, attempt.phone)
            elif kind == "unknown_code":
                body = failure_body(checkout, 4343, "Something new")
            elif kind == "other_shop":
                fields["shop_id"] = "someothershop"
            elif kind == "other_till":
                fields["till_id"] = "someothertill"
            elif kind == "no_attempt":
                fields["attempt_ref"] = "x" + secrets.token_hex(8)
            await self.e.apply_callback(
                CallbackEvent(body=body, received_at=self.clock.now(), **fields)
            )

        self.run(go())

    @rule()
    def reconcile(self) -> None:
        async def go() -> None:
            await drive(self.clock, self.e.reconcile_once())
            await self.take_callbacks()

        self.run(go())

    @rule(which=st.integers(0, 50))
    def cashier_checks_now(self, which: int) -> None:
        async def go() -> None:
            attempts = await self.attempts()
            if attempts:
                await self.e.check_now(str(attempts[which % len(attempts)].id))

        self.run(go())

    @rule(
        sale=st.sampled_from(SALES),
        no_sms=st.booleans(),
        phone=st.sampled_from([None, 0, 1, 2]),
    )
    def cashier_retries(self, sale: str, no_sms: bool, phone: int | None) -> None:
        async def go() -> None:
            with contextlib.suppress(PaymentRefused):
                await self.e.retry(
                    sale,
                    phone=None if phone is None else self.phones[phone],
                    customer_got_no_sms=no_sms,
                )
            await self.take_callbacks()

        self.run(go())

    @rule()
    def restart(self) -> None:
        async def go() -> None:
            assert self.opened is not None
            await self.opened.aclose()
            await self.open_engine()

        self.run(go())

    @rule(phone=st.integers(0, 2))
    def crash_right_after_writing_an_attempt(self, phone: int) -> None:
        """What a SIGKILL at after-attempt-commit leaves: a CREATED row, never pushed."""

        async def go() -> None:
            assert self.store is not None
            sale = "C" + secrets.token_hex(3)
            async with self.store.write() as tx:
                if await self.store.attempts.live_for_phone(
                    self.shop_id, "till1", self.phones[phone], tx=tx
                ):
                    return
                await self.store.attempts.create(
                    tx,
                    NewAttempt(
                        shop_id=self.shop_id,
                        till_id="till1",
                        sale_ref=sale,
                        amount=10,
                        phone=self.phones[phone],
                        idempotency_key=idempotency_key(self.shop_id, "till1", sale, 1),
                        attempt_ref="r" + secrets.token_hex(10),
                        expires_at=self.clock.now(),
                    ),
                )
            assert self.opened is not None
            await self.opened.aclose()
            await self.open_engine()

        self.run(go())

    # ------------------------------------------------------------------ invariants

    @invariant()
    def evidence_table_completed_and_audit_hold(self) -> None:
        if self.store is None:
            return

        async def check() -> None:
            assert self.store is not None
            attempts = await self.attempts()
            for attempt in attempts:
                entries = await self.store.audit.entries(
                    self.shop_id, attempt_id=attempt.id, limit=1000
                )
                entries.reverse()
                assert entries[0].action == "attempt.created"
                state = AttemptState.CREATED
                for entry in entries:
                    if entry.action != "attempt.transition":
                        continue
                    frm, to = AttemptState(entry.detail["from"]), AttemptState(entry.detail["to"])
                    assert frm is state, f"attempt {attempt.id}: audit chain broken"
                    assert (frm, to) in EVIDENCE_TABLE, f"{frm} -> {to} is not in the table"
                    state = to
                assert state is attempt.state, f"attempt {attempt.id}: unaudited change"
                if attempt.state is not AttemptState.CREATED:
                    assert attempt.previous_state is not None
                if attempt.id in self.ever_completed:
                    assert attempt.state is AttemptState.COMPLETED, "COMPLETED was left"
                if attempt.state is AttemptState.COMPLETED:
                    self.ever_completed.add(attempt.id)
                    if attempt.previous_state in (AttemptState.FAILED, AttemptState.EXPIRED):
                        assert attempt.flags & AttemptFlag.LATE
            by_sale: dict[str, list[Any]] = {}
            for attempt in attempts:
                by_sale.setdefault(attempt.sale_ref, []).append(attempt)
            for sale, rows in by_sale.items():
                paid = [a for a in rows if a.state is AttemptState.COMPLETED]
                plain = [a for a in paid if not a.flags & AttemptFlag.DUPLICATE_PAYMENT]
                assert len(plain) <= 1, f"sale {sale} paid twice without a duplicate flag"
            report = await self.store.audit.verify_chain()
            assert report.intact, report

        self.run(check())


def test_engine_state_machine() -> None:
    loop = asyncio.new_event_loop()
    shared = Shared()
    shared.loop = loop
    shared.secret = new_callback_secret()

    app = create_app(clock=ManualClock())

    async def setup() -> None:
        shared.transport = httpx.ASGITransport(app=app)
        shared.sim = SimulatorControl(SIM_URL, transport=shared.transport)
        shared.receiver = CallbackReceiver({KID: shared.secret}, ManualClock())
        shared.served = Served(shared.receiver)
        await shared.served.start()

    async def teardown() -> None:
        await shared.served.stop()
        await shared.sim.aclose()
        await app.state.simulator.aclose()

    loop.run_until_complete(setup())
    EngineMachine.shared = shared
    try:
        run_state_machine_as_test(
            EngineMachine,
            settings=settings(
                max_examples=int(os.environ.get("STATEFUL_EXAMPLES", "25")),
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(teardown())
        loop.close()
