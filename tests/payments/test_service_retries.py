"""Retries (DESIGN.md section 3): a new attempt with a new key, only when the rules allow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import (
    InvalidPaymentInput,
    PaymentRefused,
    PaymentView,
    RefusalReason,
    RetryBlock,
)
from smartduka_tui.payments.service import idempotency_key
from tests.conftest import unique_phone
from tests.payments.bodies import event_for, failure_body
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess


async def failed_sale(
    h: TillHarness, sale: str, code: int, phone: str | None = None
) -> PaymentView:
    phone = phone or unique_phone()
    await h.sim.set_phone_scenario(phone, result_code=code)
    view = await h.engine.start_payment(sale, 10, phone)
    await h.advance_sim(2)
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.FAILED
    return view


async def refusal(h: TillHarness, sale: str, **kwargs: object) -> PaymentRefused:
    with pytest.raises(PaymentRefused) as caught:
        await h.engine.retry(sale, **kwargs)  # type: ignore[arg-type]
    return caught.value


async def test_code_17_waits_two_minutes_for_the_same_phone(shop_till: TillHarness) -> None:
    h = shop_till
    phone = unique_phone()
    first = await h.engine.start_payment("A17", 10, phone)
    await h.advance_sim(2)
    assert (await h.view(first.attempt_id)).state is AttemptState.COMPLETED
    # The same amount to the same phone at once: Daraja's code 17.
    view = await h.engine.start_payment("B17", 10, phone)
    await h.advance_sim(2)
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.FAILED and view.result_code == "17"
    assert view.retry.block is RetryBlock.WAIT
    assert "2 minutes" in view.cashier_message
    refused = await refusal(h, "B17")
    assert refused.reason is RefusalReason.RETRY_TOO_SOON
    assert refused.retry_after == 120
    h.clock.advance(119)
    assert (await refusal(h, "B17")).retry_after == 1
    h.clock.advance(1)
    await h.sim.advance_clock(120)  # and Daraja's own window has passed too
    retried = await h.engine.retry("B17")
    assert retried.attempt_number == 2 and retried.state is AttemptState.PENDING
    await h.advance_sim(2)
    assert (await h.view(retried.attempt_id)).state is AttemptState.COMPLETED


async def test_code_17_does_not_hold_back_another_phone(shop_till: TillHarness) -> None:
    h = shop_till
    view = await failed_sale(h, "C17", 17)
    assert (await refusal(h, "C17", phone=unique_phone())).retry_after == 5
    h.clock.advance(5)
    other = unique_phone()
    retried = await h.engine.retry("C17", phone=other)
    assert retried.phone == other and retried.attempt_number == 2
    assert view.retry.retries_left == 3 and retried.retry.retries_used == 1


async def test_unable_to_lock_subscriber_waits_one_minute(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    phone = unique_phone()
    other = tmp_path / "other"
    other.mkdir()
    async with till(tmp_path, simulator.base_url) as busy, till(other, simulator.base_url) as h:
        await busy.sim.set_phone_scenario(phone, unanswered=True, drop_callback=True)
        await busy.engine.start_payment("LK1", 10, phone)
        view = await h.engine.start_payment("LK2", 10, phone)
        assert view.state is AttemptState.FAILED and view.result_code == "500.001.1001"
        assert (await refusal(h, "LK2")).retry_after == 60
        h.clock.advance(60)
        await busy.sim.resolve(await checkout_of(busy, phone), result_code=1032)
        retried = await h.engine.retry("LK2")
        assert retried.state is AttemptState.PENDING, "the phone is free again"


async def checkout_of(h: TillHarness, phone: str) -> str:
    live = await h.store.attempts.live_for_phone(h.shop_id, h.till_id, phone)
    assert live is not None and live.checkout_request_id is not None
    return live.checkout_request_id


async def test_after_a_cancel_the_same_phone_waits_out_code_17s_window(
    shop_till: TillHarness,
) -> None:
    """Issue #11 case 7: the till knows when it pushed this amount to this phone, so it says the
    real wait (not "0:05", which Daraja would answer with 17) and offers another phone."""
    h = shop_till
    view = await failed_sale(h, "D1", 1032)
    assert view.retry.block is RetryBlock.WAIT and view.retry.other_phone_now
    assert "wait 2:00" in view.retry.message and "another phone" in view.retry.message
    assert (await refusal(h, "D1")).retry_after == 120
    assert (await refusal(h, "D1", phone=unique_phone())).retry_after == 5
    h.clock.advance(100)
    assert "wait 0:20" in (await h.view(view.attempt_id)).retry.message
    h.clock.advance(20)
    await h.sim.advance_clock(120)
    assert (await h.view(view.attempt_id)).retry.allowed_now
    retried = await h.engine.retry("D1")
    await h.advance_sim(2)
    assert (await h.view(retried.attempt_id)).result_code != "17", "Daraja took the retry"
    attempt = await h.store.attempts.get(h.shop_id, int(retried.attempt_id))
    assert attempt is not None
    assert attempt.idempotency_key == idempotency_key(h.shop_id, h.till_id, "D1", 2)
    entries = await h.store.audit.entries(h.shop_id, attempt_id=attempt.id)
    retry_entry = next(e for e in entries if e.action == "attempt.retry")
    assert retry_entry.detail["retry_of"] == int(view.attempt_id)
    assert retry_entry.detail["previous_result_code"] == "1032"


async def test_after_expiry_only_with_the_cashiers_no_sms_confirmation(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, unanswered=True, drop_callback=True)
    view = await h.engine.start_payment("E1", 10, phone)
    h.clock.advance(301)
    await h.reconcile()
    view = await h.view(view.attempt_id)
    assert view.state is AttemptState.EXPIRED and view.retry.needs_no_sms_confirmation
    h.clock.advance(5)
    refused = await refusal(h, "E1")
    assert refused.reason is RefusalReason.NEEDS_NO_SMS_CONFIRMATION
    assert "SMS" in refused.message
    assert len(await h.engine.sale_attempts("E1")) == 1
    await h.sim.set_phone_scenario(phone)
    await h.sim.resolve(view.checkout_request_id or "", result_code=1032)
    retried = await h.engine.retry("E1", customer_got_no_sms=True)
    assert retried.attempt_number == 2
    entries = await h.store.audit.entries(h.shop_id, attempt_id=int(retried.attempt_id))
    assert next(e for e in entries if e.action == "attempt.retry").detail["customer_got_no_sms"]


async def test_never_after_needs_review(shop_till: TillHarness) -> None:
    h = shop_till
    phone = unique_phone()
    await h.sim.set_phone_scenario(phone, result_code=4242)
    view = await h.engine.start_payment("NR1", 10, phone)
    await h.advance_sim(2)
    assert (await h.view(view.attempt_id)).state is AttemptState.NEEDS_REVIEW
    h.clock.advance(3600)
    for kwargs in ({}, {"customer_got_no_sms": True}, {"phone": unique_phone()}):
        refused = await refusal(h, "NR1", **kwargs)
        assert refused.reason is RefusalReason.RETRY_NOT_ALLOWED
    assert len(await h.engine.sale_attempts("NR1")) == 1


async def test_not_after_a_code_that_is_not_safe_to_charge_again(shop_till: TillHarness) -> None:
    h = shop_till
    view = await failed_sale(h, "NS1", 2028)
    assert view.retry.block is RetryBlock.NOT_SAFE
    h.clock.advance(3600)
    assert (await refusal(h, "NS1")).reason is RefusalReason.RETRY_NOT_ALLOWED


async def test_at_most_max_retries(tmp_path: Path, simulator: ServerProcess) -> None:
    async with till(tmp_path, simulator.base_url, limits={"max_retries": 1}) as h:
        phone = unique_phone()
        await failed_sale(h, "MX1", 1032, phone)
        h.clock.advance(120)
        await h.sim.advance_clock(120)
        retried = await h.engine.retry("MX1")
        await h.advance_sim(2)
        view = await h.view(retried.attempt_id)
        assert view.state is AttemptState.FAILED
        assert view.retry.block is RetryBlock.NO_RETRIES_LEFT and view.retry.retries_left == 0
        h.clock.advance(3600)
        assert (await refusal(h, "MX1")).reason is RefusalReason.RETRY_NOT_ALLOWED


async def test_not_while_live_not_when_paid_not_for_an_unknown_sale(
    shop_till: TillHarness,
) -> None:
    h = shop_till
    phone = unique_phone()
    view = await h.engine.start_payment("LV1", 10, phone)
    assert view.retry.block is RetryBlock.STILL_LIVE
    assert (await refusal(h, "LV1")).reason is RefusalReason.RETRY_NOT_ALLOWED
    await h.advance_sim(2)
    assert (await refusal(h, "LV1")).reason is RefusalReason.ALREADY_PAID
    assert (await refusal(h, "NOSUCH")).reason is RefusalReason.NO_SUCH_SALE


async def test_retry_checks_its_phone(shop_till: TillHarness) -> None:
    h = shop_till
    await failed_sale(h, "BP1", 1032)
    h.clock.advance(120)
    with pytest.raises(InvalidPaymentInput) as caught:
        await h.engine.retry("BP1", phone="0712")
    assert caught.value.field == "phone"
    assert len(await h.engine.sale_attempts("BP1")) == 1


async def test_retries_refused_by_code_17_do_not_count(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    """A push Daraja refused with 17 opened no prompt: it is not one of the 3 retries."""
    async with till(tmp_path, simulator.base_url, limits={"max_retries": 1}) as h:
        phone = unique_phone()
        paid = await h.engine.start_payment("X17", 10, phone)
        await h.advance_sim(2)
        assert (await h.view(paid.attempt_id)).state is AttemptState.COMPLETED
        refused = await h.engine.start_payment("Y17", 10, phone)
        await h.advance_sim(2)
        assert (await h.view(refused.attempt_id)).result_code == "17"
        h.clock.advance(125)
        await h.sim.advance_clock(125)
        # Another sale of the same amount to the same phone goes first, so Daraja refuses
        # the retry of Y17 with 17 again.
        other = await h.engine.start_payment("Z17", 10, phone)
        await h.advance_sim(2)
        assert (await h.view(other.attempt_id)).state is AttemptState.COMPLETED
        retried = await h.engine.retry("Y17")
        await h.advance_sim(2)
        view = await h.view(retried.attempt_id)
        assert view.state is AttemptState.FAILED and view.result_code == "17"
        assert view.retry.retries_used == 0 and view.retry.retries_left == 1
        assert view.retry.block is RetryBlock.WAIT


async def test_a_retry_first_asks_about_the_previous_attempt(shop_till: TillHarness) -> None:
    """Issue #11 case 2, confirmation off: a failure callback (rewritten; M-Pesa in truth took
    the money) is asked about before the retry prompt, which then never goes out."""
    h = shop_till
    phone, view = await h.waiting("AB1", 10)
    attempt = await h.store.attempts.get(h.shop_id, int(view.attempt_id))
    assert attempt is not None and attempt.checkout_request_id is not None
    lie = failure_body(attempt.checkout_request_id, 1032)
    assert (await h.deliver(event_for(attempt, lie, h.clock.now()))).outcome.value == "applied"
    assert (await h.view(view.attempt_id)).state is AttemptState.FAILED
    await h.advance_sim(2)  # the customer had paid
    h.clock.advance(120)
    await h.sim.advance_clock(120)
    refused = await refusal(h, "AB1")
    assert refused.reason is RefusalReason.ALREADY_PAID
    after = await h.view(view.attempt_id)
    assert after.state is AttemptState.COMPLETED and after.late
    assert len(await h.engine.sale_attempts("AB1")) == 1
    pushes = [r for r in await h.sim.requests(phone=phone) if "stkpush/" in r.path]
    assert len(pushes) == 1, "no second prompt"


async def test_after_a_failure_without_a_checkout_id_only_with_no_sms_confirmation(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url) as h:
        phone = unique_phone()
        await h.sim.set_phone_scenario(phone, push_anomaly="gateway_error", result_code=1032)
        view = await h.engine.start_payment("NC1", 10, phone)
        await h.advance_sim(2)
        view = await h.view(view.attempt_id)
        assert view.state is AttemptState.FAILED and view.checkout_request_id is None
        assert view.retry.block is RetryBlock.NEEDS_NO_SMS_CONFIRMATION
        h.clock.advance(120)
        refused = await refusal(h, "NC1")
        assert refused.reason is RefusalReason.NEEDS_NO_SMS_CONFIRMATION
        assert len(await h.engine.sale_attempts("NC1")) == 1
        await h.sim.set_phone_scenario(phone)
        retried = await h.engine.retry("NC1", customer_got_no_sms=True)
        assert retried.attempt_number == 2


async def test_a_definite_push_refusal_needs_no_sms_question(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    async with till(tmp_path, simulator.base_url, sim_settings={"max_timestamp_skew_s": 60}) as h:
        view = await h.engine.start_payment("PR1", 10, unique_phone())
        assert view.state is AttemptState.FAILED and view.checkout_request_id is None
        assert view.retry.block is not RetryBlock.NEEDS_NO_SMS_CONFIRMATION
