"""Issue #11, case by case: a sale is shown paid only when it is paid, and failed only when it
failed, even when the relay lies. The simulator and the relay (production mode) are real
processes; the till's engine runs in process with confirmation by query on (as in production)
unless a case says otherwise; its feed comes through `MaliciousRelay`, which rewrites it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.clock import ManualClock, SystemClock
from smartduka_tui.manager import ManagerService, Resolution
from smartduka_tui.model import AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.api import (
    CallbackOutcome,
    PaymentRefused,
    RefusalReason,
    RetryBlock,
    Stage,
)
from smartduka_tui.payments.views import UNBOUND_SUCCESS
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.store.records import AttemptFilter, StateOrFlags
from smartduka_tui.store.secret import Secret
from tests.conftest import unique_phone
from tests.integration.malicious import (
    FeedEvent,
    callbacks_stored,
    confirming_engine,
    drain,
    replayed_onto,
    with_body,
)
from tests.integration.support import RelayHandle, eventually, make_till, own_shortcode
from tests.integration.test_pay_e2e import direct_till
from tests.payments.bodies import failure_body, success_body


def new_clock() -> ManualClock:
    return ManualClock(SystemClock().now())


async def pushes(sim: SimulatorControl, phone: str) -> int:
    return sum(1 for r in await sim.requests(phone=phone) if "stkpush/" in r.path)


async def queries_for(sim: SimulatorControl, checkout_request_id: str | None) -> int:
    return sum(
        1
        for r in await sim.requests(checkout_request_id=checkout_request_id)
        if "stkpushquery" in r.path
    )


def stk(event: FeedEvent) -> dict[str, Any]:
    callback: dict[str, Any] = json.loads(event["body"])["Body"]["stkCallback"]
    return callback


def patched(event: FeedEvent, **fields: Any) -> FeedEvent:
    """The event's own body with some stkCallback fields changed."""
    body = json.loads(event["body"])
    body["Body"]["stkCallback"].update(fields)
    return with_body(event, json.dumps(body).encode())


# ------------------------------------------------------------------------------- case 1


@pytest.mark.parametrize("attack", ["substituted body", "replayed event of another till"])
async def test_case_1_a_borrowed_checkout_id_never_pays_an_unknown_attempt(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, attack: str
) -> None:
    shortcode, creds = await own_shortcode(sim, callback_delay_s=0.3)
    first = await relay.enrol("shop", "add", f"Truth {tmp_path.name}")
    second = await relay.enrol("till", "add", first["shop_id"])
    victim_till, paying_till = [
        await make_till(
            tmp_path / n, sim.base_url, e, prefix="TR", shortcode=shortcode, creds=creds
        )
        for n, e in (("a", first), ("b", second))
    ]
    payer, customer = unique_phone(), unique_phone()
    # A real KES 50 payment at the shop's other till.
    async with confirming_engine(paying_till, new_clock()) as other:
        paid = await other.start_payment("B1", 50, payer)
        await callbacks_stored(relay, paying_till, 1)
        _, served = await drain(other, relay)
        (real_event,) = served
        paid = await other.get(paid.attempt_id)
        assert paid.state is AttemptState.COMPLETED and paid.receipt and paid.checkout_request_id
    # This till: the push is answered 503 without an envelope, then the customer cancels.
    await sim.set_phone_scenario(customer, push_anomaly="gateway_error", result_code=1032)
    async with confirming_engine(victim_till, new_clock()) as engine:
        view = await engine.start_payment("A1", 50, customer)
        assert view.state is AttemptState.UNKNOWN and view.checkout_request_id is None
        await callbacks_stored(relay, victim_till, 1)

        def attack_feed(events: list[FeedEvent]) -> list[FeedEvent]:
            if attack == "substituted body":
                assert paid.checkout_request_id is not None and paid.receipt is not None
                body = success_body(paid.checkout_request_id, 50, customer, paid.receipt)
                return [with_body(event, body) for event in events]
            return [replayed_onto(real_event, event) for event in events]

        handled, _ = await drain(engine, relay, attack_feed)
        assert [h.callback_outcome for h in handled] == [CallbackOutcome.NEEDS_REVIEW]
        view = await engine.get(view.attempt_id)
        assert view.state is AttemptState.NEEDS_REVIEW and view.receipt is None
        assert view.retry.block is RetryBlock.NEEDS_REVIEW
        (problem,) = await engine.store.problems.list(victim_till.shop_id)
        assert problem.detail["attempt_id"] == int(view.attempt_id)
        if attack == "substituted body":
            assert view.cashier_message == UNBOUND_SUCCESS
            assert problem.detail["pattern"] == "success_not_bound"
        else:  # the other till's body still names its own customer's phone
            assert problem.detail["pattern"] == "callback_disagrees"
            assert "phone" in problem.detail["reason"]
    # Never a query with the id from the callback body: only the paying till's own one.
    assert await queries_for(sim, paid.checkout_request_id) == 1


# ------------------------------------------------------------------------------- case 2


async def test_case_2_a_success_rewritten_to_a_cancel_is_found_paid_and_never_charged_twice(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phone = unique_phone()
    clock = new_clock()
    async with confirming_engine(till, clock) as engine:
        view = await engine.start_payment("C2", 60, phone)
        assert view.checkout_request_id is not None
        await callbacks_stored(relay, till, 1)
        lie = failure_body(view.checkout_request_id, 1032)
        handled, served = await drain(engine, relay, lambda ev: [with_body(e, lie) for e in ev])
        assert stk(served[0])["ResultCode"] == 0, "Daraja said paid"
        assert [h.callback_outcome for h in handled] == [CallbackOutcome.APPLIED]
        view = await engine.get(view.attempt_id)
        assert view.state is AttemptState.COMPLETED and view.receipt_pending
        assert view.stage is Stage.PAID_RECEIPT_TO_FOLLOW
        (problem,) = await engine.store.problems.list(till.shop_id)
        assert problem.detail["pattern"] == "failure_callback_contradicted"
        assert problem.detail["callback_code"] == "1032"
        clock.advance(600)
        with pytest.raises(PaymentRefused) as refused:
            await engine.retry("C2")
        assert refused.value.reason is RefusalReason.ALREADY_PAID
    assert await pushes(sim, phone) == 1, "no second prompt"


# ------------------------------------------------------------------------------- case 3


def without_receipt(how: str) -> Any:
    def rewrite(events: list[FeedEvent]) -> list[FeedEvent]:
        out = []
        for event in events:
            body = json.loads(event["body"])
            items = body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
            for item in list(items):
                if item["Name"] == "MpesaReceiptNumber":
                    if how == "item missing":
                        items.remove(item)
                    elif how == "Value missing":
                        del item["Value"]
                    else:
                        item["Name"] = "MpesaReceipt"
            out.append(with_body(event, json.dumps(body).encode()))
        return out

    return rewrite


@pytest.mark.parametrize("how", ["item missing", "Value missing", "Name changed"])
async def test_case_3_a_success_without_a_receipt_is_receipt_pending_never_confirmed(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, how: str
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    async with confirming_engine(till, new_clock(), confirm=False) as engine:
        view = await engine.start_payment("C3", 61, unique_phone())
        await callbacks_stored(relay, till, 1)
        await drain(engine, relay, without_receipt(how))
        view = await engine.get(view.attempt_id)
        assert (
            view.state is AttemptState.COMPLETED and view.receipt is None and view.receipt_pending
        )
        assert "confirmed" not in view.cashier_message
        assert "receipt pending" in view.cashier_message
        pending = await engine.store.attempts.problems(till.shop_id)
        assert [a.flags & AttemptFlag.RECEIPT_PENDING for a in pending.items] == [
            AttemptFlag.RECEIPT_PENDING
        ], "on the manager's problem list as receipt pending"


# ------------------------------------------------------------------------------- case 4


@pytest.mark.parametrize("code", ["00", "-0", "+0"])
async def test_case_4_only_zero_itself_is_success(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, code: str
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phone = unique_phone()
    await sim.set_phone_scenario(phone, result_code=1032)  # in truth: cancelled
    async with confirming_engine(till, new_clock()) as engine:
        view = await engine.start_payment("C4", 62, phone)
        await callbacks_stored(relay, till, 1)

        def recode(events: list[FeedEvent]) -> list[FeedEvent]:
            return [
                patched(
                    e,
                    ResultCode=code,
                    CallbackMetadata={
                        "Item": [
                            {"Name": "Amount", "Value": 62},
                            {"Name": "MpesaReceiptNumber", "Value": "FAKE000004"},
                            {"Name": "PhoneNumber", "Value": int(phone)},
                        ]
                    },
                )
                for e in events
            ]

        handled, _ = await drain(engine, relay, recode)
        view = await engine.get(view.attempt_id)
        assert view.receipt is None and not view.is_paid
        (problem,) = await engine.store.problems.list(till.shop_id)
        if code == "+0":  # not even a code: the body is refused, the attempt waits for a query
            assert [h.callback_outcome for h in handled] == [CallbackOutcome.MALFORMED]
            assert view.state is AttemptState.PENDING
            assert problem.kind is ProblemKind.UNAPPLIED_EVENT
            assert "ResultCode" in problem.detail["reason"]
        else:
            assert [h.callback_outcome for h in handled] == [CallbackOutcome.NEEDS_REVIEW]
            assert view.state is AttemptState.NEEDS_REVIEW
            assert problem.detail["pattern"] == "callback_disagrees"
            assert problem.detail["reason"] == f"unknown result code {code}"


# ------------------------------------------------------------------------------- case 5


async def test_case_5_receipt_pending_is_set_by_the_query_and_cleared_by_the_callback(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    async with confirming_engine(till, new_clock()) as engine:
        view = await engine.start_payment("C5", 63, unique_phone())
        await callbacks_stored(relay, till, 1)
        handled, served = await drain(engine, relay, lambda events: [])  # dropped
        assert handled == [] and len(served) == 1
        view = await engine.check_now(view.attempt_id)
        assert view.state is AttemptState.COMPLETED and view.receipt_pending
        receipt_pending = AttemptFilter(any_of=StateOrFlags(flags=AttemptFlag.RECEIPT_PENDING))
        listed = await engine.store.attempts.problems(till.shop_id, receipt_pending)
        assert [str(a.id) for a in listed.items] == [view.attempt_id]
        assert listed.items[0].receipt_number is None, "never a receipt '0'"

        # The relay re-delivers the unacknowledged event after its visibility timeout.
        async def redelivered() -> bool:
            handled, _ = await drain(engine, relay)
            return bool(handled)

        assert await eventually(redelivered)
        view = await engine.get(view.attempt_id)
        assert view.receipt and not view.receipt_pending
        assert (await engine.store.attempts.problems(till.shop_id, receipt_pending)).items == ()


# ------------------------------------------------------------------------------- case 6


async def test_case_6_the_countdown_end_asks_mpesa_when_the_callback_is_lost(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    clock = new_clock()
    async with confirming_engine(till, clock, run_reconciler=True) as engine:
        view = await engine.start_payment("C6", 64, unique_phone())
        await callbacks_stored(relay, till, 1)
        await drain(engine, relay, lambda events: [])  # the callback is lost
        assert await queries_for(sim, view.checkout_request_id) == 0

        async def sleeping() -> bool:
            return clock.sleepers > 0

        assert await eventually(sleeping)
        clock.advance(engine.settings.timings.prompt_countdown_s)

        async def paid() -> bool:
            if clock.sleepers:
                clock.advance(0.05)  # the query pace
            return (await engine.get(view.attempt_id)).state is AttemptState.COMPLETED

        assert await eventually(paid), "asked at the end of the countdown"
        assert await queries_for(sim, view.checkout_request_id) == 1


# ------------------------------------------------------------------------------- case 7


async def test_case_7_retry_advice_follows_code_17_and_offers_another_phone(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phone, other = unique_phone(), unique_phone()
    await sim.set_phone_scenario(phone, result_code=1032)
    clock = new_clock()
    async with confirming_engine(till, clock) as engine:
        view = await engine.start_payment("C7", 65, phone)
        await callbacks_stored(relay, till, 1)
        await drain(engine, relay)
        view = await engine.get(view.attempt_id)
        assert view.state is AttemptState.FAILED and view.result_code == "1032"
        assert view.retry.block is RetryBlock.WAIT and view.retry.other_phone_now
        assert "wait 2:00" in view.retry.message and "another phone" in view.retry.message
        clock.advance(5)
        with pytest.raises(PaymentRefused) as refused:
            await engine.retry("C7")
        assert refused.value.reason is RefusalReason.RETRY_TOO_SOON
        assert refused.value.retry_after in (115, 116)  # whole seconds, rounded up
        assert await pushes(sim, other) == 0
        assert await pushes(sim, phone) == 1, "no push Daraja would refuse with 17"
        clock.advance(1)  # past the general retry delay (times are kept to the millisecond)
        retried = await engine.retry("C7", phone=other)
        assert retried.state is AttemptState.PENDING and retried.attempt_number == 2
        assert retried.retry.retries_used == 1


async def test_reordered_and_duplicated_events_change_no_money_state_wrongly(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    paying, cancelling = unique_phone(), unique_phone()
    await sim.set_phone_scenario(cancelling, result_code=1032)
    async with confirming_engine(till, new_clock()) as engine:
        paid = await engine.start_payment("R1", 66, paying)
        cancelled = await engine.start_payment("R2", 67, cancelling)
        await callbacks_stored(relay, till, 2)
        handled, _ = await drain(engine, relay, lambda events: [*reversed(events), *events])
        assert len(handled) == 4
        assert (await engine.get(paid.attempt_id)).state is AttemptState.COMPLETED
        assert (await engine.get(cancelled.attempt_id)).state is AttemptState.FAILED
        assert {h.callback_outcome for h in handled[2:]} == {CallbackOutcome.NO_CHANGE}
        assert await engine.store.problems.list(till.shop_id) == []


# ------------------------------------------------------------------------------- case 8


async def test_case_8_expired_is_outcome_unknown_an_sms_goes_to_a_manager_who_settles_it(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phone = unique_phone()
    # The customer pays, but the callback never comes through (the relay drops it) and the
    # query keeps saying "being processed".
    await sim.set_phone_scenario(phone, query_anomaly="stuck_pending")
    clock = new_clock()
    async with confirming_engine(till, clock) as engine:
        view = await engine.start_payment("C8", 68, phone)
        # The sale's own Kenya day: the expiry below may cross midnight in Nairobi.
        sale_day = clock.now().astimezone(KENYA_TZ).date()
        await callbacks_stored(relay, till, 1)
        await drain(engine, relay, lambda events: [])
        clock.advance(engine.settings.timings.attempt_expiry_s + 1)
        await engine.reconcile_once()
        view = await engine.get(view.attempt_id)
        assert view.state is AttemptState.EXPIRED and view.cashier_message.startswith(
            "Outcome unknown"
        )
        assert view.retry.block is RetryBlock.NEEDS_NO_SMS_CONFIRMATION
        view = await engine.report_customer_sms(view.attempt_id)  # "got an SMS"
        assert (
            view.state is AttemptState.NEEDS_REVIEW and view.retry.block is RetryBlock.NEEDS_REVIEW
        )
        manager = ManagerService(
            engine.store, engine.settings, clock, shop_id=till.shop_id, till_id=till.till_id
        )
        await ManagerPin.of(engine.store).set(Secret("4826"))
        assert (await manager.sign_in(Secret("4826"))).accepted
        before = await manager.daily_summary(sale_day)
        await manager.resolve(f"A{view.attempt_id}", "on the statement", Resolution.PAID, "SDT8A2")
        after = await manager.daily_summary(sale_day)
        view = await engine.get(view.attempt_id)
        assert view.state is AttemptState.COMPLETED and view.receipt == "SDT8A2"
        assert (after.sales_paid, after.amount_paid) == (
            before.sales_paid + 1,
            before.amount_paid + 68,
        )
        assert after.needs_review == before.needs_review - 1
