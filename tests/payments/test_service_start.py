"""start_payment and its guards: bad input, same sale twice, one live attempt per phone, the
push rate limit, an unreachable Daraja; against the real simulator and a real SQLite store."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import (
    InvalidPaymentInput,
    PaymentRefused,
    PaymentView,
    RefusalReason,
    Stage,
)
from smartduka_tui.payments.service import idempotency_key
from smartduka_tui.store.records import ShopSecrets
from smartduka_tui.store.secret import Secret
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness, till


async def counts(harness: TillHarness) -> tuple[int, int]:
    """(attempts, audit entries) in the till's database."""
    attempts = await harness.store.db.fetchone("SELECT count(*) FROM attempts")
    audit = await harness.store.db.fetchone("SELECT count(*) FROM audit_log")
    assert attempts is not None and audit is not None
    return int(attempts[0]), int(audit[0])


async def pushes_to(harness: TillHarness, phone: str) -> int:
    requests = await harness.sim.requests(phone=phone)
    return sum(1 for r in requests if r.path.endswith("/stkpush/v1/processrequest"))


# Each bad value of each argument, with words its message must contain.
BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("sale_ref", {"sale_ref": ""}, "must not be empty"),
    ("sale_ref", {"sale_ref": "   "}, "must not be empty"),
    ("sale_ref", {"sale_ref": "S-1"}, "letters and digits only"),
    ("sale_ref", {"sale_ref": "S 1"}, "letters and digits only"),
    ("sale_ref", {"sale_ref": "ABCDEFGHIJK"}, "at most 10 characters, got 11"),
    ("sale_ref", {"sale_ref": 1042}, "must be text"),
    ("amount", {"amount": 0}, "from KES 1 to KES 250,000, got 0"),
    ("amount", {"amount": -5}, "from KES 1 to KES 250,000, got -5"),
    ("amount", {"amount": 250_001}, "got 250,001"),
    ("amount", {"amount": 10.5}, "whole number of shillings"),
    ("amount", {"amount": 10.0}, "whole number of shillings"),
    ("amount", {"amount": Decimal("10.50")}, "no cents"),
    ("amount", {"amount": "10"}, "whole number of shillings"),
    ("amount", {"amount": True}, "whole number of shillings"),
    ("phone", {"phone": ""}, "phone number is empty"),
    ("phone", {"phone": "07123"}, "too short"),
    ("phone", {"phone": "0712345678901"}, "too long"),
    ("phone", {"phone": "+14155550100"}, "+254 is Kenya's country code"),
    ("phone", {"phone": "0212345678"}, "must continue with 7 or 1"),
    ("phone", {"phone": "712345678"}, "must start with 07, 01, 2547, 2541 or +254"),
    ("phone", {"phone": "07l2345678"}, "contains letters"),
    ("phone", {"phone": 712345678}, "must be text"),
]


@pytest.mark.parametrize(("field", "change", "words"), BAD_INPUT)
async def test_bad_input_is_refused_and_nothing_is_stored_or_sent(
    shop_till: TillHarness, field: str, change: dict[str, Any], words: str
) -> None:
    good_phone = unique_phone()
    arguments: dict[str, Any] = {"sale_ref": "S1", "amount": 100, "phone": good_phone, **change}
    before = await counts(shop_till)
    with pytest.raises(InvalidPaymentInput) as caught:
        await shop_till.engine.start_payment(**arguments)
    assert caught.value.field == field
    assert words in caught.value.message
    assert await counts(shop_till) == before
    assert await pushes_to(shop_till, good_phone) == 0


@pytest.mark.parametrize(
    "phone", ["0712345678", "0712 345 678", "0712-345-678", "+254712345678", "254712345678"]
)
async def test_phone_forms_normalise_to_one_number(shop_till: TillHarness, phone: str) -> None:
    await shop_till.sim.set_phone_scenario("254712345678", drop_callback=True)
    view = await shop_till.engine.start_payment("N1", 7, phone)
    assert view.phone == "254712345678"
    assert view.phone_masked == "2547******78"
    assert "254712345678" not in view.phone_masked


async def test_a_new_sale_is_written_then_pushed(shop_till: TillHarness) -> None:
    phone = unique_phone()
    seen: list[PaymentView] = []
    shop_till.engine.add_listener(seen.append)
    view = await shop_till.engine.start_payment("A1", 150, phone)
    assert view.state is AttemptState.PENDING
    assert view.stage is Stage.WAITING_FOR_PIN
    assert view.checkout_request_id
    assert seen[0].state is AttemptState.CREATED, "listeners see the row before the push"
    assert seen[-1].state is AttemptState.PENDING
    attempt = await shop_till.store.attempts.get(shop_till.shop_id, int(view.attempt_id))
    assert attempt is not None
    assert attempt.idempotency_key == idempotency_key(shop_till.shop_id, shop_till.till_id, "A1", 1)
    push = [r for r in await shop_till.sim.requests(phone=phone) if "stkpush" in r.path]
    assert len(push) == 1
    assert push[0].body["AccountReference"] == "TSA1"
    assert push[0].body["Amount"] == 150


async def test_same_sale_again_returns_the_live_attempt_without_a_second_prompt(
    shop_till: TillHarness,
) -> None:
    phone, first = await shop_till.waiting("B1", 20)
    again = await shop_till.engine.start_payment("B1", 20, phone)
    assert again.attempt_id == first.attempt_id
    assert await pushes_to(shop_till, phone) == 1


@pytest.mark.parametrize("change", [{"amount": 21}, {"phone": "other"}])
async def test_same_sale_with_another_amount_or_phone_is_refused(
    shop_till: TillHarness, change: dict[str, Any]
) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, drop_callback=True)
    await shop_till.engine.start_payment("C1", 20, phone)
    arguments: dict[str, Any] = {"sale_ref": "C1", "amount": 20, "phone": phone, **change}
    if arguments["phone"] == "other":
        arguments["phone"] = unique_phone()
    before = await counts(shop_till)
    with pytest.raises(PaymentRefused) as caught:
        await shop_till.engine.start_payment(**arguments)
    assert caught.value.reason is RefusalReason.SALE_REF_CONFLICT
    assert "already sent for KES 20" in caught.value.message
    assert await counts(shop_till) == before


async def test_one_live_attempt_per_phone(shop_till: TillHarness) -> None:
    phone = unique_phone()
    await shop_till.sim.set_phone_scenario(phone, drop_callback=True)
    await shop_till.engine.start_payment("D1", 20, phone)
    before = await counts(shop_till)
    with pytest.raises(PaymentRefused) as caught:
        await shop_till.engine.start_payment("D2", 30, phone)
    assert caught.value.reason is RefusalReason.PHONE_BUSY
    assert "sale D1" in caught.value.message
    assert phone not in caught.value.message, "the full number stays off the screen"
    assert await counts(shop_till) == before
    assert await pushes_to(shop_till, phone) == 1


async def test_push_rate_limit_refuses_with_retry_after(tmp_path: Any, simulator: Any) -> None:
    async with till(tmp_path, simulator.base_url, limits={"pushes_per_minute": 2}) as harness:
        for n in range(2):
            await harness.engine.start_payment(f"R{n}", 10, unique_phone())
        phone = unique_phone()
        before = await counts(harness)
        with pytest.raises(PaymentRefused) as caught:
            await harness.engine.start_payment("R9", 10, phone)
        assert caught.value.reason is RefusalReason.RATE_LIMITED
        assert caught.value.retry_after == 30
        assert await counts(harness) == before
        harness.clock.advance(30)
        view = await harness.engine.start_payment("R9", 10, phone)
        assert view.state is AttemptState.PENDING


async def test_rate_limit_survives_a_restart(tmp_path: Any, simulator: Any) -> None:
    async with till(tmp_path, simulator.base_url, limits={"pushes_per_minute": 1}) as harness:
        await harness.engine.start_payment("Q1", 10, unique_phone())
        await harness.restart()
        with pytest.raises(PaymentRefused) as caught:
            await harness.engine.start_payment("Q2", 10, unique_phone())
        assert caught.value.reason is RefusalReason.RATE_LIMITED


async def test_unreachable_daraja_refuses_before_anything_is_stored(
    tmp_path: Any, simulator: Any
) -> None:
    async with till(tmp_path, simulator.base_url) as harness:
        await harness.close()
        closed = harness.settings.daraja.model_copy(update={"base_url": "http://127.0.0.1:9"})
        harness.settings = harness.settings.model_copy(update={"daraja": closed})
        await harness.open()
        before = await counts(harness)
        with pytest.raises(PaymentRefused) as caught:
            await harness.engine.start_payment("U1", 10, unique_phone())
        assert caught.value.reason is RefusalReason.DARAJA_UNREACHABLE
        assert "nothing was sent" in caught.value.message
        assert await counts(harness) == before


async def test_rejected_credentials_refuse_before_anything_is_stored(
    tmp_path: Any, simulator: Any
) -> None:
    async with till(tmp_path, simulator.base_url) as harness:
        shop = await harness.store.shops.require(harness.shop_id)
        async with harness.store.write() as tx:
            await harness.store.shops.update(
                tx, shop.config, ShopSecrets(consumer_secret=Secret("wrongsecret1"))
            )
        await harness.restart()
        before = await counts(harness)
        with pytest.raises(PaymentRefused) as caught:
            await harness.engine.start_payment("W1", 10, unique_phone())
        assert caught.value.reason is RefusalReason.SHOP_NOT_READY
        assert "consumer key or secret" in caught.value.message
        assert "wrongsecret1" not in caught.value.message
        assert await counts(harness) == before


async def test_views_and_lists(shop_till: TillHarness) -> None:
    first, second = unique_phone(), unique_phone()
    for phone in (first, second):
        await shop_till.sim.set_phone_scenario(phone, drop_callback=True)
    a = await shop_till.engine.start_payment("L1", 10, first)
    await shop_till.engine.start_payment("L2", 10, second)
    assert await shop_till.engine.recent_phones(5) == [second, first]
    assert await shop_till.engine.awaiting_count() == 2
    assert [v.attempt_id for v in await shop_till.engine.sale_attempts("L1")] == [a.attempt_id]
    with pytest.raises(PaymentRefused) as caught:
        await shop_till.engine.get("999999")
    assert caught.value.reason is RefusalReason.NO_SUCH_ATTEMPT
