"""One test per row of DESIGN.md section 3's evidence table, end to end: the real simulator
produces the evidence, the engine applies it to a real SQLite store. Each test checks the
state, the audit record of the transition (from, to, cause) and what the cashier is told.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smartduka_tui.model import AttemptFlag, AttemptState, ProblemKind
from smartduka_tui.payments.api import CallbackOutcome, RetryBlock, Stage
from smartduka_tui.store.records import Attempt
from tests.conftest import unique_phone
from tests.payments.bodies import event_for, failure_body, success_body, with_phone_item
from tests.payments.harness import TillHarness, till
from tests.payments.proxy import TcpProxy
from tests.support.processes import ServerProcess


async def row(h: TillHarness, attempt_id: str) -> Attempt:
    attempt = await h.store.attempts.get(h.shop_id, int(attempt_id))
    assert attempt is not None
    return attempt


async def pushes(h: TillHarness, phone: str) -> int:
    return sum(1 for r in await h.sim.requests(phone=phone) if "stkpush/" in r.path)


# ---------------------------------------------------------------- the push


async def test_push_accepted_moves_created_to_pending(shop_till: TillHarness) -> None:
    _, view = await shop_till.waiting("P1", 10)
    assert view.state is AttemptState.PENDING and view.checkout_request_id
    assert await shop_till.transitions(view.attempt_id) == [
        ("CREATED", "PENDING", "system", "push_accepted")
    ]


async def test_error_envelope_on_http_500_is_a_definite_refusal(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    """ "Unable to lock subscriber" (500.001.1001): FAILED, retry after one minute."""
    phone = unique_phone()
    other = tmp_path / "other"
    other.mkdir()
    async with (
        till(tmp_path, simulator.base_url) as first,
        till(other, simulator.base_url) as second,
    ):
        await first.sim.set_phone_scenario(phone, unanswered=True)
        await first.engine.start_payment("K1", 10, phone)
        view = await second.engine.start_payment("K2", 10, phone)
        assert view.state is AttemptState.FAILED
        assert view.result_code == "500.001.1001"
        assert "busy with another M-Pesa request" in view.cashier_message
        assert view.retry.block is RetryBlock.WAIT
        assert view.finished_at is not None and view.retry.not_before is not None
        assert (view.retry.not_before - view.finished_at).total_seconds() == 60
        assert await second.transitions(view.attempt_id) == [
            ("CREATED", "FAILED", "system", "push_refused")
        ]


async def test_a_4xx_is_a_definite_refusal(tmp_path: Path, simulator: ServerProcess) -> None:
    # The simulator refuses a Timestamp far from its own time with 400.002.02; the till's
    # ManualClock is months away from it.
    async with till(tmp_path, simulator.base_url, sim_settings={"max_timestamp_skew_s": 60}) as h:
        phone = unique_phone()
        view = await h.engine.start_payment("F1", 10, phone)
        assert view.state is AttemptState.FAILED
        assert view.result_code == "400.002.02"
        assert view.retry.block is RetryBlock.NOT_SAFE
        assert await h.transitions(view.attempt_id) == [
            ("CREATED", "FAILED", "system", "push_refused")
        ]


async def test_connection_refused_after_sign_in_is_a_definite_refusal(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    proxy = await TcpProxy(simulator.base_url).start()
    async with till(tmp_path, simulator.base_url, daraja_url=proxy.url) as h:
        await h.engine.gateway.prepare()  # a token in hand, then Daraja goes away
        await proxy.refuse()
        phone = unique_phone()
        view = await h.engine.start_payment("C1", 10, phone)
        assert view.state is AttemptState.FAILED
        assert view.result_code == "connection_failed"
        assert "nothing was sent" in view.cashier_message
        assert view.retry.block is RetryBlock.WAIT  # only the general retry delay
        assert await pushes(h, phone) == 0


@pytest.mark.parametrize(
    ("scenario", "why"),
    [
        ({"push_anomaly": "hold", "push_hold_s": 30}, "read timeout"),
        ({"push_anomaly": "gateway_error"}, "503 without an envelope"),
    ],
)
async def test_unknown_push_outcome_is_unknown_and_never_pushed_again(
    tmp_path: Path, simulator: ServerProcess, scenario: dict[str, Any], why: str
) -> None:
    async with till(
        tmp_path,
        simulator.base_url,
        read_timeout_s=1.0,
    ) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, drop_callback=True, **scenario)
        view = await h.engine.start_payment("X1", 10, phone)
        assert view.state is AttemptState.UNKNOWN, why
        assert view.stage is Stage.OUTCOME_UNKNOWN
        assert "Do not send it again" in view.cashier_message
        again = await h.engine.start_payment("X1", 10, phone)
        assert again.attempt_id == view.attempt_id
        assert await pushes(h, phone) == 1
        assert await h.transitions(view.attempt_id) == [
            ("CREATED", "UNKNOWN", "system", "push_outcome_unknown")
        ]


async def test_created_found_at_start_up_becomes_unknown(shop_till: TillHarness) -> None:
    """The process died after writing the row: on restart the row is UNKNOWN, not re-pushed."""
    phone = unique_phone()
    from smartduka_tui.payments.service import idempotency_key
    from smartduka_tui.store.records import NewAttempt

    async with shop_till.store.write() as tx:
        created = await shop_till.store.attempts.create(
            tx,
            NewAttempt(
                shop_id=shop_till.shop_id,
                till_id=shop_till.till_id,
                sale_ref="Z1",
                amount=10,
                phone=phone,
                idempotency_key=idempotency_key(shop_till.shop_id, shop_till.till_id, "Z1", 1),
                attempt_ref="crashedattemptref001",
                expires_at=shop_till.clock.now(),
            ),
        )
    await shop_till.restart()
    view = await shop_till.view(str(created.id))
    assert view.state is AttemptState.UNKNOWN
    assert await shop_till.transitions(view.attempt_id) == [
        ("CREATED", "UNKNOWN", "system", "push_outcome_unknown")
    ]
    entries = await shop_till.store.audit.entries(shop_till.shop_id, attempt_id=created.id)
    assert any(e.detail.get("cause") == "startup" for e in entries)
    assert (await shop_till.engine.start_payment("Z1", 10, phone)).attempt_id == view.attempt_id
    assert await pushes(shop_till, phone) == 0


# ---------------------------------------------------------------- callbacks, no confirmation


async def test_success_callback_completes_pending(shop_till: TillHarness) -> None:
    phone = unique_phone()
    view = await shop_till.engine.start_payment("G1", 10, phone)
    await shop_till.advance_sim(2)
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.stage is Stage.PAID
    assert view.receipt and view.receipt in view.cashier_message
    assert (await shop_till.transitions(view.attempt_id))[-1] == (
        "PENDING",
        "COMPLETED",
        "callback",
        "callback_success",
    )


@pytest.mark.parametrize("confirm", [False, True])
async def test_success_callback_for_an_unknown_attempt_needs_review(
    tmp_path: Path, simulator: ServerProcess, confirm: bool
) -> None:
    """The push response was lost: nothing of this till's own ties the payment to the sale,
    so a success is for a manager to check against the statement, never COMPLETED."""
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=confirm) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, push_anomaly="gateway_error")
        view = await h.engine.start_payment("G2", 10, phone)
        assert view.state is AttemptState.UNKNOWN
        await h.advance_sim(2)
        view = await h.view(view.attempt_id)
        assert view.state is AttemptState.NEEDS_REVIEW and view.receipt is None
        assert view.cashier_message == (
            "M-Pesa says a payment was made; check the statement before handing over goods."
        )
        assert "push response was lost" in (view.manager_hint or "")
        assert view.checkout_request_id is None, "an id from a callback body is never taken"
        assert (await h.transitions(view.attempt_id))[-1] == (
            "UNKNOWN",
            "NEEDS_REVIEW",
            "callback",
            "success_unbound",
        )
        queries = [
            r
            for r in await h.sim.requests(phone=None)
            if "stkpushquery" in r.path and r.shortcode == h.shortcode
        ]
        assert not queries, "never a query with the callback's CheckoutRequestID"


async def test_callback_before_the_push_response_is_not_lost(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, callback_before_response=True)
    view = await shop_till.engine.start_payment("G3", 10, phone)
    await shop_till.settle()
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED
    assert [t[:2] for t in await shop_till.transitions(view.attempt_id)] == [
        ("CREATED", "PENDING"),
        ("PENDING", "COMPLETED"),
    ]


@pytest.mark.parametrize("code", [1032, 1, 2001, 1037])
async def test_known_failure_callback_fails_pending(shop_till: TillHarness, code: int) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, result_code=code)
    view = await shop_till.engine.start_payment("H1", 10, phone)
    await shop_till.advance_sim(2)
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.FAILED and view.result_code == str(code)
    assert view.retry.block in (RetryBlock.WAIT, RetryBlock.NONE)
    assert (await shop_till.transitions(view.attempt_id))[-1] == (
        "PENDING",
        "FAILED",
        "callback",
        "callback_failure",
    )


async def test_known_failure_callback_fails_unknown(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, push_anomaly="gateway_error", result_code=1032)
        view = await h.engine.start_payment("H2", 10, phone)
        await h.advance_sim(2)
        view = await h.view(view.attempt_id)
        assert view.state is AttemptState.FAILED
        assert (await h.transitions(view.attempt_id))[-1][:2] == ("UNKNOWN", "FAILED")


async def test_unknown_code_callback_needs_review(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, result_code=4242)
    view = await shop_till.engine.start_payment("H3", 10, phone)
    await shop_till.advance_sim(2)
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.NEEDS_REVIEW and view.stage is Stage.NEEDS_REVIEW
    assert view.retry.block is RetryBlock.NEEDS_REVIEW
    assert "4242" in (view.manager_hint or "")


@pytest.mark.parametrize("mismatch", ["amount", "phone", "checkout_request_id"])
async def test_mismatching_success_callback_needs_review(
    shop_till: TillHarness, mismatch: str
) -> None:
    phone, view = await shop_till.waiting("M1", 100)
    attempt = await row(shop_till, view.attempt_id)
    assert attempt.checkout_request_id is not None
    body = success_body(
        "ws_CO_someoneelse" if mismatch == "checkout_request_id" else attempt.checkout_request_id,
        "1.00" if mismatch == "amount" else "100.00",
        unique_phone() if mismatch == "phone" else phone,
    )
    result = await shop_till.deliver(event_for(attempt, body, shop_till.clock.now()))
    assert result.outcome is CallbackOutcome.NEEDS_REVIEW
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.NEEDS_REVIEW
    transition = (await shop_till.store.audit.entries(shop_till.shop_id, attempt_id=attempt.id))[0]
    assert mismatch.split("_")[0].lower() in transition.detail["review_reason"].lower()


async def test_masked_phone_in_a_callback_is_not_a_mismatch(shop_till: TillHarness) -> None:
    phone, view = await shop_till.waiting("M2", 100)
    attempt = await row(shop_till, view.attempt_id)
    assert attempt.checkout_request_id is not None
    masked = f"2547 ***** {phone[-3:]}"
    body = with_phone_item(success_body(attempt.checkout_request_id, "100.00", phone), masked)
    assert masked.encode() in body and attempt.checkout_request_id.encode() in body
    result = await shop_till.deliver(event_for(attempt, body, shop_till.clock.now()))
    assert result.outcome is CallbackOutcome.APPLIED
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.COMPLETED


# ---------------------------------------------------------------- confirmation by query on


@pytest.fixture
async def confirming_till(tmp_path: Path, simulator: ServerProcess):  # type: ignore[no-untyped-def]
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=True) as h:
        yield h


async def test_confirmed_success_completes_with_the_callbacks_receipt(
    confirming_till: TillHarness,
) -> None:
    h = confirming_till
    phone = unique_phone()
    view = await h.engine.start_payment("Q1", 10, phone)
    await h.advance_sim(2)
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.receipt
    assert (await h.transitions(view.attempt_id))[-1][3] == "confirmed_success"
    queries = [r for r in await h.sim.requests(phone=None) if "stkpushquery" in r.path]
    assert any(q.checkout_request_id == view.checkout_request_id for q in queries)


@pytest.mark.parametrize("anomaly", ["stuck_pending", "gateway_error"])
async def test_inconclusive_confirmation_stays_confirming_and_is_retried(
    confirming_till: TillHarness, anomaly: str
) -> None:
    h = confirming_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, query_anomaly=anomaly, query_anomaly_times=1)
    view = await h.engine.start_payment("Q3", 10, phone)
    await h.advance_sim(2)
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.PENDING
    assert view.confirming and view.stage is Stage.CONFIRMING
    assert view.receipt is None
    h.clock.advance(1)  # confirmations are retried at once, whatever the age
    report = await h.reconcile()
    assert report.settled == 1
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.receipt, "the callback's receipt was kept"
    assert not view.confirming


async def test_contradicted_confirmation_needs_review(confirming_till: TillHarness) -> None:
    h = confirming_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, query_result_code=1032)
    view = await h.engine.start_payment("Q4", 10, phone)
    await h.advance_sim(2)
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.NEEDS_REVIEW
    assert view.retry.block is RetryBlock.NEEDS_REVIEW
    assert (await h.transitions(view.attempt_id))[-1][3] == "confirmation_contradicted"


# ---------------------------------------------------------------- STK query (reconciler)


async def test_query_success_completes_with_receipt_pending_then_the_receipt_arrives(
    shop_till: TillHarness,
) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, late_callback_s=60)
    view = await shop_till.engine.start_payment("R1", 10, phone)
    await shop_till.advance_sim(2)  # resolved; the callback comes 60 s later
    shop_till.clock.advance(31)
    report = await shop_till.reconcile()
    assert report.queried == 1 and report.settled == 1
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.receipt is None
    assert view.receipt_pending and view.stage is Stage.PAID_RECEIPT_TO_FOLLOW
    assert (await shop_till.transitions(view.attempt_id))[-1][3] == "query_success"
    await shop_till.advance_sim(61)
    view = await shop_till.view(view.attempt_id)
    assert view.receipt and not view.receipt_pending and view.stage is Stage.PAID


async def test_query_known_final_code_fails_pending(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url, sim_settings={"prompt_timeout_s": 5}) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, unanswered=True, drop_callback=True)
        view = await h.engine.start_payment("R2", 10, phone)
        await h.advance_sim(6)  # the prompt ran out: 1037
        h.clock.advance(31)
        await h.reconcile()
        view = await h.view(view.attempt_id)
        assert view.state is AttemptState.FAILED and view.result_code == "1037"
        assert (await h.transitions(view.attempt_id))[-1] == (
            "PENDING",
            "FAILED",
            "query",
            "query_failure",
        )


@pytest.mark.parametrize(
    "scenario",
    [
        {"unanswered": True, "drop_callback": True},  # "being processed"
        {"query_result_code": 4242, "drop_callback": True},  # a code we do not know
        {"query_anomaly": "gateway_error", "drop_callback": True},  # no answer
    ],
)
async def test_inconclusive_query_leaves_pending(
    shop_till: TillHarness, scenario: dict[str, Any]
) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, **scenario)
    view = await shop_till.engine.start_payment("R3", 10, phone)
    await shop_till.advance_sim(2)
    shop_till.clock.advance(31)
    report = await shop_till.reconcile()
    assert report.queried == 1 and report.still_pending == 1
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.PENDING
    assert await shop_till.transitions(view.attempt_id) == [
        ("CREATED", "PENDING", "system", "push_accepted")
    ]


async def test_young_pending_attempts_are_not_queried(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, drop_callback=True)
    await shop_till.engine.start_payment("R4", 10, phone)
    shop_till.clock.advance(29)
    assert (await shop_till.reconcile()).queried == 0


# ---------------------------------------------------------------- expiry


async def test_expiry_after_a_last_query_that_settles_nothing(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, unanswered=True, drop_callback=True)
    view = await shop_till.engine.start_payment("E1", 10, phone)
    shop_till.clock.advance(301)
    report = await shop_till.reconcile()
    assert report.expired == 1 and report.queried == 1
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.EXPIRED and view.stage is Stage.EXPIRED
    assert view.retry.needs_no_sms_confirmation
    assert (await shop_till.transitions(view.attempt_id))[-1] == (
        "PENDING",
        "EXPIRED",
        "expiry",
        "expiry",
    )


async def test_expiry_of_an_unknown_attempt(tmp_path: Path, simulator: ServerProcess) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, push_anomaly="gateway_error", drop_callback=True)
        view = await h.engine.start_payment("E2", 10, phone)
        h.clock.advance(301)
        report = await h.reconcile()
        assert report.expired == 1 and report.queried == 0, "nothing to ask without an id"
        assert (await h.transitions(view.attempt_id))[-1][:2] == ("UNKNOWN", "EXPIRED")


async def test_the_last_query_can_still_settle_an_expiring_attempt(
    shop_till: TillHarness,
) -> None:
    _, view = await shop_till.waiting("E3", 10)
    await shop_till.advance_sim(2)
    shop_till.clock.advance(301)
    report = await shop_till.reconcile()
    assert report.settled == 1 and report.expired == 0
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.COMPLETED


# ---------------------------------------------------------------- late and duplicate payments


async def test_success_after_failed_is_completed_and_flagged_late(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, result_code=1032)
    view = await shop_till.engine.start_payment("T1", 10, phone)
    await shop_till.advance_sim(2)
    attempt = await row(shop_till, view.attempt_id)
    assert attempt.state is AttemptState.FAILED and attempt.checkout_request_id is not None
    body = success_body(attempt.checkout_request_id, 10, phone, receipt="LATE000001")
    result = await shop_till.deliver(event_for(attempt, body, shop_till.clock.now()))
    assert result.outcome is CallbackOutcome.APPLIED
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.late and view.receipt == "LATE000001"
    assert (await shop_till.transitions(view.attempt_id))[-1][:2] == ("FAILED", "COMPLETED")


async def test_late_callback_after_expiry_completes_flagged_late(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(
        phone, late_callback_s=400, query_anomaly="stuck_pending"
    )
    view = await shop_till.engine.start_payment("T2", 10, phone)
    shop_till.clock.advance(301)
    await shop_till.reconcile()
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.EXPIRED
    await shop_till.advance_sim(402)
    view = await shop_till.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.late
    assert (await shop_till.transitions(view.attempt_id))[-1][:2] == ("EXPIRED", "COMPLETED")


async def test_success_for_a_sale_already_paid_is_a_duplicate_payment(
    shop_till: TillHarness,
) -> None:
    phone = unique_phone()
    # First attempt: M-Pesa said "cancelled" (callback and query alike), so a retry went out
    # and was paid; then a success for the first attempt's own CheckoutRequestID arrives.
    await shop_till.sim.set_phone_scenario(phone, result_code=1032)
    first = await shop_till.engine.start_payment("D1", 10, phone)
    await shop_till.advance_sim(2)
    assert (await shop_till.view(first.attempt_id)).state is AttemptState.FAILED
    await shop_till.sim.set_phone_scenario(phone)
    await shop_till.advance_sim(130)  # out of code 17's window
    shop_till.clock.advance(130)
    second = await shop_till.engine.retry("D1")
    await shop_till.advance_sim(2)
    assert (await shop_till.view(second.attempt_id)).state is AttemptState.COMPLETED
    attempt = await row(shop_till, first.attempt_id)
    assert attempt.checkout_request_id is not None
    late = success_body(attempt.checkout_request_id, 10, phone, receipt="LATE000003")
    await shop_till.deliver(event_for(attempt, late, shop_till.clock.now()))
    first_view = await shop_till.view(first.attempt_id)
    assert first_view.state is AttemptState.COMPLETED
    assert first_view.duplicate_payment and first_view.late
    assert "refund" in (first_view.manager_hint or "")
    assert first_view.retry.block is RetryBlock.NEEDS_REVIEW
    problems = await shop_till.store.problems.list(shop_till.shop_id)
    assert any(p.detail.get("pattern") == "duplicate_payment" for p in problems)


# ---------------------------------------------------------------- callbacks that match nothing


async def test_signed_callback_matching_no_attempt_is_a_problem_payment(
    shop_till: TillHarness,
) -> None:
    phone, view = await shop_till.waiting("N1", 10)
    attempt = await row(shop_till, view.attempt_id)
    event = event_for(
        attempt,
        success_body("ws_CO_nowhere", 55, phone),
        shop_till.clock.now(),
        attempt_ref="noattemptwiththisref",
    )
    result = await shop_till.deliver(event)
    assert result.outcome is CallbackOutcome.UNMATCHED and result.view is None
    problems = await shop_till.store.problems.list(shop_till.shop_id)
    assert problems[0].kind is ProblemKind.UNMATCHED_CALLBACK
    assert problems[0].detail["amount"] == "55"
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.PENDING


async def test_callback_for_another_shop_or_till_changes_nothing(
    shop_till: TillHarness,
) -> None:
    phone, view = await shop_till.waiting("N2", 10)
    attempt = await row(shop_till, view.attempt_id)
    assert attempt.checkout_request_id is not None
    body = success_body(attempt.checkout_request_id, 10, phone)
    for override in ({"shop_id": "othershop"}, {"till_id": "othertill"}):
        result = await shop_till.deliver(
            event_for(attempt, body, shop_till.clock.now(), **override)
        )
        assert result.outcome is CallbackOutcome.FOREIGN
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.PENDING
    entries = await shop_till.store.audit.entries(shop_till.shop_id, limit=5)
    assert [e.action for e in entries[:2]] == ["callback.foreign", "callback.foreign"]


async def test_unsigned_or_forged_callbacks_never_reach_the_engine(
    shop_till: TillHarness,
) -> None:
    import httpx

    phone, view = await shop_till.waiting("N3", 10)
    attempt = await row(shop_till, view.attempt_id)
    assert attempt.checkout_request_id is not None
    body = success_body(attempt.checkout_request_id, 10, phone)
    base = shop_till.settings.relay.url
    forged = [
        f"/hooks/stk/{attempt.shop_id}/{attempt.till_id}/{attempt.attempt_ref}/k1.{'A' * 22}",
        f"/hooks/stk/{attempt.shop_id}/{attempt.till_id}/{attempt.attempt_ref}",
        "/somewhere/else",
    ]
    async with httpx.AsyncClient() as client:
        for path in forged:
            response = await client.post(f"{base}{path}", content=body)
            assert response.status_code == 404
    await shop_till.settle()
    assert shop_till.receiver.refused == len(forged)
    assert (await shop_till.view(view.attempt_id)).state is AttemptState.PENDING


async def test_callback_carrying_another_attempts_checkout_id_needs_review(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        paid_phone, unknown_phone = unique_phone(), unique_phone()
        await h.sim.set_phone_scenario(paid_phone, drop_callback=True)
        paid = await h.engine.start_payment("O1", 10, paid_phone)
        await h.sim.set_phone_scenario(unknown_phone, push_anomaly="gateway_error")
        unknown = await h.engine.start_payment("O2", 10, unknown_phone)
        assert unknown.state is AttemptState.UNKNOWN and paid.checkout_request_id
        body = success_body(paid.checkout_request_id, 10, unknown_phone)
        result = await h.deliver(event_for(await row(h, unknown.attempt_id), body, h.clock.now()))
        assert result.outcome is CallbackOutcome.NEEDS_REVIEW
        assert (await h.view(unknown.attempt_id)).checkout_request_id is None
        assert (await h.view(paid.attempt_id)).state is AttemptState.PENDING


async def test_a_failure_callback_waits_for_its_query_and_a_later_pass_finds_it_paid(
    confirming_till: TillHarness,
) -> None:
    """Confirmation on: a failure is confirmed by a query with the attempt's own
    CheckoutRequestID too; when M-Pesa, in truth, took the money, the sale is paid."""
    h = confirming_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(
        phone, drop_callback=True, query_anomaly="gateway_error", query_anomaly_times=1
    )
    view = await h.engine.start_payment("Q5", 10, phone)
    attempt = await row(h, view.attempt_id)
    assert attempt.checkout_request_id is not None
    failed = await h.deliver(
        event_for(attempt, failure_body(attempt.checkout_request_id, 1032), h.clock.now())
    )
    assert failed.outcome is CallbackOutcome.CONFIRMING
    assert (
        failed.view is not None
        and failed.view.state is AttemptState.PENDING
        and failed.view.confirming
    )
    assert failed.view.retry.block is RetryBlock.STILL_LIVE, "no retry on a claim"
    await h.advance_sim(2)  # M-Pesa, in truth, took the money
    report = await h.reconcile()
    assert report.queried == 1
    final = await h.view(view.attempt_id)
    assert final.state is AttemptState.COMPLETED and final.receipt_pending and not final.confirming
    assert (await row(h, view.attempt_id)).flags & AttemptFlag.RECEIPT_PENDING
    (problem,) = await h.store.problems.list(h.shop_id)
    assert problem.detail["pattern"] == "failure_callback_contradicted"
    assert problem.detail["callback_code"] == "1032" and problem.detail["query_code"] == "0"


# ---------------------------------------------------------------- issue #11: binding and honesty


async def test_a_receipt_another_sale_holds_never_completes(shop_till: TillHarness) -> None:
    h = shop_till
    paid_phone, phone = unique_phone(), unique_phone()
    paid = await h.engine.start_payment("RC1", 10, paid_phone)
    await h.advance_sim(2)
    paid = await h.view(paid.attempt_id)
    assert paid.state is AttemptState.COMPLETED and paid.receipt
    await h.sim.set_phone_scenario(phone, drop_callback=True)
    view = await h.engine.start_payment("RC2", 10, phone)
    attempt = await row(h, view.attempt_id)
    assert attempt.checkout_request_id is not None
    body = success_body(attempt.checkout_request_id, 10, phone, receipt=paid.receipt)
    result = await h.deliver(event_for(attempt, body, h.clock.now()))
    assert result.outcome is CallbackOutcome.NEEDS_REVIEW
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.NEEDS_REVIEW and view.receipt is None
    assert "already pays sale RC1" in (view.manager_hint or "")
    (problem,) = await h.store.problems.list(h.shop_id)
    assert problem.detail["pattern"] == "success_not_bound"
    assert (await h.view(paid.attempt_id)).receipt == paid.receipt, "the payer is untouched"


async def test_a_success_without_a_receipt_is_receipt_pending_never_confirmed(
    shop_till: TillHarness,
) -> None:
    """Issue #11 case 3 (confirmation off): no MpesaReceiptNumber, so the words stay honest."""
    h = shop_till
    phone, view = await h.waiting("RP1", 10)
    attempt = await row(h, view.attempt_id)
    assert attempt.checkout_request_id is not None
    body = success_body(attempt.checkout_request_id, 10, phone).replace(
        b'{"Name": "MpesaReceiptNumber", "Value": "TST0000001"}, ', b""
    )
    assert b"MpesaReceiptNumber" not in body
    await h.deliver(event_for(attempt, body, h.clock.now()))
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.COMPLETED and view.receipt_pending
    assert view.stage is Stage.PAID_RECEIPT_TO_FOLLOW
    assert "confirmed" not in view.cashier_message and "receipt pending" in view.cashier_message
    assert (await row(h, view.attempt_id)).flags & AttemptFlag.RECEIPT_PENDING
    receipt_pending = await h.store.attempts.problems(h.shop_id)
    assert [a.id for a in receipt_pending.items] == [int(view.attempt_id)]


async def test_receipt_pending_is_set_by_a_query_and_cleared_by_the_callback(
    shop_till: TillHarness,
) -> None:
    """Issue #11 case 5."""
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, late_callback_s=60)
    view = await h.engine.start_payment("RP2", 10, phone)
    await h.advance_sim(2)
    h.clock.advance(31)
    await h.reconcile()
    attempt = await row(h, view.attempt_id)
    assert attempt.state is AttemptState.COMPLETED and attempt.receipt_number is None
    assert attempt.flags & AttemptFlag.RECEIPT_PENDING
    await h.advance_sim(61)
    attempt = await row(h, view.attempt_id)
    assert attempt.receipt_number and not attempt.flags & AttemptFlag.RECEIPT_PENDING
    assert (await h.store.attempts.problems(h.shop_id)).items == ()


async def test_expired_reads_outcome_unknown(shop_till: TillHarness) -> None:
    """Issue #11 case 8: EXPIRED is not "not paid"."""
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, unanswered=True, drop_callback=True)
    view = await h.engine.start_payment("EU1", 10, phone)
    h.clock.advance(301)
    await h.reconcile()
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.EXPIRED
    assert view.cashier_message.startswith("Outcome unknown")
    assert "not paid" not in view.cashier_message.lower()
