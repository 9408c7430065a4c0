"""Pilot tests of the cashier's paths against the real simulator and the real payment engine.

Most tests put text into fields and press Enter (each simulated keystroke costs the harness a
wait for idle); the keystroke test and the bad-input test type key by key.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from textual import events
from textual.widgets import Input, Static

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import RetryBlock, Stage
from smartduka_tui.simulator.schemas import RequestLogEntry
from smartduka_tui.ui.format import local_time
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.confirm_no_sms import ConfirmNoSmsScreen
from smartduka_tui.ui.screens.failure import FailureScreen
from smartduka_tui.ui.screens.phone import PhoneScreen
from smartduka_tui.ui.screens.success import LATE, RECEIPT_TO_FOLLOW, SuccessScreen
from smartduka_tui.ui.screens.waiting import WHY_NO_RETRY_YET, WaitingScreen
from smartduka_tui.ui.summary import PROMPT_TIME_UP
from smartduka_tui.ui.widgets.big_text import BigText
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess
from tests.ui.conftest import (
    SIZE,
    advance,
    build_app,
    wait_for_screen,
    wait_until,
)

PUSH_PATH = "/mpesa/stkpush/v1/processrequest"


def local(phone: str) -> list[str]:
    """The keys a cashier presses to type `phone` as 07XXXXXXXX."""
    return list("0" + phone[3:])


def text_of(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


async def put(pilot: Any, selector: str, text: str) -> None:
    """Fill a field as if typed (Input.Changed fires), without a keystroke per character."""
    pilot.app.screen.query_one(selector, Input).value = text
    await pilot.pause()


async def start_sale(pilot: Any, amount: int, phone: str) -> Any:
    """Checkout: total, Enter; phone, Enter. Returns the waiting screen."""
    checkout = await wait_for_screen(pilot, CheckoutScreen)
    await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
    await put(pilot, "#total", str(amount))
    await pilot.press("enter")
    await wait_for_screen(pilot, PhoneScreen)
    await put(pilot, "#phone", "0" + phone[3:])
    await pilot.press("enter")
    return await wait_for_screen(pilot, WaitingScreen)


ANSWER_AFTER_S = 30


async def script(harness: TillHarness, phone: str, **scenario: Any) -> str:
    """What `phone` does at the simulator. Its answer waits for `answer()` (the simulator's
    clock runs in real time otherwise, and a quick answer would race the test's checks)."""
    scenario.setdefault("callback_delay_s", ANSWER_AFTER_S)
    await harness.sim.set_phone_scenario(phone, **scenario)
    return phone


async def pushes_answered(harness: TillHarness, timeout: float = 20) -> None:
    """Wait until the simulator has answered every push the till sent (no attempt is CREATED).

    The waiting screen shows as soon as the attempt is stored, before its push has reached the
    simulator. A clock moved before the push arrives leaves its scripted answer due a full delay
    later (30 s of real time, past every wait here), and a request log read then lacks the push.
    Bounded in real time, like `wait_until`: it is about not hanging, not about speed."""
    deadline = time.monotonic() + timeout
    while any(a.state is AttemptState.CREATED for a in await harness.engine.live_attempts()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the simulator to answer the till's push")
        await asyncio.sleep(0.02)


async def answer(harness: TillHarness) -> None:
    """Move the simulator's clock past the scripted answer delay: the callback goes out."""
    await pushes_answered(harness)
    await harness.sim.advance_clock(ANSWER_AFTER_S + 1)


async def pushes(harness: TillHarness, phone: str) -> list[RequestLogEntry]:
    await pushes_answered(harness)
    return [r for r in await harness.sim.requests(phone=phone) if r.path == PUSH_PATH]


async def failed_with(harness: TillHarness, pilot: Any, code: int, phone: str) -> FailureScreen:
    await script(harness, phone, result_code=code)
    await start_sale(pilot, 120, phone)
    await answer(harness)
    return await wait_for_screen(pilot, FailureScreen)


# ---------------------------------------------------------------------------------- success


async def test_success_shows_receipt_rings_and_one_key_starts_the_next_sale(
    shop_till: TillHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    rings: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(None))
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        first_ref = checkout.sale_ref
        await start_sale(pilot, 250, phone)
        await answer(shop_till)
        success: Any = await wait_for_screen(pilot, SuccessScreen)
        receipt = success.view.receipt
        assert receipt
        assert success.query_one("#receipt-big", BigText).text == receipt
        assert text_of(success, "#receipt-line") == f"M-Pesa receipt {receipt}"
        details = text_of(success, "#details")
        assert "KES 250" in details and success.view.phone_masked in details
        assert phone not in details
        assert rings == [None]
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref not in ("", first_ref), "next ref")
        assert checkout.total_text == ""
        assert app.awaiting == 0


async def test_a_new_sale_reaches_the_prompt_in_six_keystrokes(shop_till: TillHarness) -> None:
    """Total typed (3 digits), Enter, Down to the most recent phone, Enter: six keys."""
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 100, phone)
        await answer(shop_till)
        await wait_for_screen(pilot, SuccessScreen)
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        keys = ["2", "5", "0", "enter", "down", "enter"]
        await pilot.press(*keys[:4])
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        await wait_until(pilot, lambda: bool(phone_screen.recent), "recent phones")
        await pilot.press(*keys[4:])
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        assert len(keys) <= 6
        assert waiting.view.phone == phone and waiting.view.amount == 250
        assert len(await pushes(shop_till, phone)) == 2


# ---------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("code", "words"),
    [(1032, "cancel"), (2001, "PIN"), (1, "enough"), (1037, "reach")],
    ids=["1032-cancelled", "2001-wrong-pin", "1-insufficient-funds", "1037-unreachable"],
)
async def test_failure_shows_the_catalogue_message_and_when_to_retry(
    shop_till: TillHarness, code: int, words: str
) -> None:
    phone = unique_phone()
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        failure = await failed_with(shop_till, pilot, code, phone)
        view = failure.view
        assert view.state is AttemptState.FAILED and view.result_code == str(code)
        message = text_of(failure, "#cashier-message")
        assert message == view.cashier_message
        assert words.lower() in message.lower()
        assert f"M-Pesa code {code}" in text_of(failure, "#facts")
        assert "Retries used: 0 of 3." in text_of(failure, "#retry-rule")
        # The same amount to the same phone: Daraja's code-17 window from this till's own push
        # (not the 5 s retry delay, which Daraja would answer with 17); another phone at once.
        assert view.retry.block is RetryBlock.WAIT and view.retry.other_phone_now
        assert failure.check_action("retry", ()) is None
        assert failure.check_action("another_phone", ()) is True
        wait_text = text_of(failure, "#retry-wait")
        assert wait_text.startswith("M-Pesa refuses this amount to this phone for 2:00 more")
        assert "another phone (a) can be sent now" in wait_text
        # Issue #12 case 6: the rule's own words gave the time in UTC.
        assert view.retry.not_before is not None
        assert f"until {local_time(view.retry.not_before)} Kenya time" in view.retry.message
        assert "UTC" not in text_of(failure, "#retry-rule")
        await advance(pilot, shop_till, 2)
        await wait_until(
            pilot, lambda: "1:58" in text_of(failure, "#retry-wait"), "the countdown to move"
        )
        await shop_till.sim.advance_clock(120)
        await advance(pilot, shop_till, 118)
        await wait_until(pilot, lambda: failure.check_action("retry", ()) is True, "retry open")
        await script(shop_till, phone)
        await pilot.press("r")
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        assert waiting.view.attempt_number == 2
        assert len(await pushes(shop_till, phone)) == 2


async def test_code_17_waits_two_minutes_for_the_same_phone(shop_till: TillHarness) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 300, phone)
        await answer(shop_till)
        await wait_for_screen(pilot, SuccessScreen)
        await pilot.press("enter")
        # Same amount, same phone, within two minutes: M-Pesa answers 17.
        await start_sale(pilot, 300, phone)
        await answer(shop_till)
        failure: Any = await wait_for_screen(pilot, FailureScreen)
        assert failure.view.result_code == "17"
        assert failure.check_action("retry", ()) is None
        assert text_of(failure, "#retry-wait").startswith(
            "M-Pesa refuses this amount to this phone for 2:00 more"
        )
        await advance(pilot, shop_till, 60)
        await wait_until(
            pilot, lambda: "for 1:00 more" in text_of(failure, "#retry-wait"), "the countdown"
        )
        assert failure.check_action("retry", ()) is None
        await advance(pilot, shop_till, 60)
        await wait_until(pilot, lambda: failure.check_action("retry", ()) is True, "retry open")
        await shop_till.sim.advance_clock(120)
        await pilot.press("r")
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        assert waiting.view.attempt_number == 2


async def test_retry_limit_reached_closes_retry(tmp_path: Any, simulator: ServerProcess) -> None:
    async with till(
        tmp_path,
        simulator.base_url,
        confirm_callbacks_by_query=False,
        limits={"max_retries": 1},
    ) as harness:
        phone = unique_phone()
        app = build_app(harness)
        async with app.run_test(size=SIZE) as pilot:
            failure = await failed_with(harness, pilot, 1032, phone)
            await harness.sim.advance_clock(120)
            await advance(pilot, harness, 120)
            await wait_until(pilot, lambda: failure.check_action("retry", ()) is True, "retry")
            await pilot.press("r")
            await wait_for_screen(pilot, WaitingScreen)
            await answer(harness)
            second: Any = await wait_for_screen(pilot, FailureScreen)
            assert second.view.attempt_number == 2
            assert second.view.retry.block is RetryBlock.NO_RETRIES_LEFT
            assert "Retries used: 1 of 1." in text_of(second, "#retry-rule")
            assert "No retries left" in text_of(second, "#retry-rule")
            # Issue #12 case 6: the catalogue's "ask if they want to try again" no longer
            # stands beside "No retries left".
            assert text_of(second, "#cashier-message") == (
                "The customer cancelled the prompt on their phone."
            )
            await advance(pilot, harness, 10)
            assert second.check_action("retry", ()) is None
            assert second.check_action("another_phone", ()) is None
            for key in ("r", "a"):
                second.clear_notice()
                await pilot.press(key)
                # A greyed key says why rather than only changing colour.
                assert second.notice_text.startswith("No retries left (1 used)"), key
            assert pilot.app.screen is second
            assert len(await pushes(harness, phone)) == 2
            await pilot.press("escape")
            checkout = await wait_for_screen(pilot, CheckoutScreen)
            assert "was not paid by M-Pesa" in checkout.notice_text


async def test_a_greyed_retry_key_says_when_it_opens(shop_till: TillHarness) -> None:
    phone = unique_phone()
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        failure = await failed_with(shop_till, pilot, 1032, phone)
        assert failure.check_action("retry", ()) is None
        await pilot.press("r")
        not_before = failure.view.retry.not_before
        assert not_before is not None
        assert failure.notice_text == (
            f"Not yet: safe to try again in 2:00 (at {local_time(not_before)})."
        )
        assert pilot.app.screen is failure
        assert len(await pushes(shop_till, phone)) == 1
        # The reason follows the clock rather than going stale, and goes once retry opens.
        await advance(pilot, shop_till, 60)
        await wait_until(
            pilot, lambda: "try again in 1:00 " in failure.notice_text, "the reason to follow"
        )
        await advance(pilot, shop_till, 60)
        await wait_until(pilot, lambda: failure.check_action("retry", ()) is True, "retry open")
        assert failure.notice_text == ""


async def test_retry_pressed_while_checking_whether_it_is_safe_is_not_lost(
    shop_till: TillHarness,
) -> None:
    phone = unique_phone()
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await failed_with(shop_till, pilot, 1032, phone)
        await shop_till.sim.advance_clock(120)
        await script(shop_till, phone)
        # The key arrives with the clock's move, before the service has answered whether the
        # wait is over (the old screen dropped it: the key was still greyed).
        shop_till.clock.advance(120)
        app.post_message(events.Key("r", "r"))  # as the terminal driver posts it
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        assert waiting.view.attempt_number == 2
        assert len(await pushes(shop_till, phone)) == 2


async def test_retry_with_another_phone(shop_till: TillHarness) -> None:
    phone, other = unique_phone(), await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        failure = await failed_with(shop_till, pilot, 1, phone)
        await advance(pilot, shop_till, 5)
        await wait_until(
            pilot, lambda: failure.check_action("another_phone", ()) is True, "other phone"
        )
        await pilot.press("a")
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        assert phone_screen.retry_of is not None
        await put(pilot, "#phone", "0" + other[3:])
        await pilot.press("enter")
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        assert waiting.view.phone == other and waiting.view.attempt_number == 2
        assert waiting.view.sale_ref == failure.view.sale_ref


# ---------------------------------------------------------------------------------- waiting


async def test_countdown_runs_on_the_clock_and_its_end_is_not_a_failure(
    shop_till: TillHarness,
) -> None:
    phone = await script(shop_till, unique_phone(), unanswered=True)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        waiting = await start_sale(pilot, 90, phone)
        await wait_until(pilot, lambda: waiting.view.state is AttemptState.PENDING, "pending")
        await wait_until(pilot, lambda: waiting.prompt_seconds_left() == 60, "a full countdown")
        assert "Waiting for the customer" in text_of(waiting, "#stage")
        assert waiting.check_action("retry", ()) is None
        assert waiting.check_action("another_phone", ()) is None
        await advance(pilot, shop_till, 25)
        await wait_until(pilot, lambda: waiting.prompt_seconds_left() == 35, "35 s left")
        assert "0:35" in str(waiting.query_one("#countdown").value)
        await advance(pilot, shop_till, 40)
        await wait_until(pilot, lambda: text_of(waiting, "#stage") == PROMPT_TIME_UP, "time up")
        assert pilot.app.screen is waiting
        assert waiting.check_action("retry", ()) is None
        assert waiting.check_action("another_phone", ()) is None
        await pilot.press("r", "a")
        assert pilot.app.screen is waiting
        assert "12:05:00" in text_of(waiting, "#expiry")


async def test_lost_callback_is_resolved_by_reconciliation(shop_till: TillHarness) -> None:
    phone = await script(shop_till, unique_phone(), drop_callback=True)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        waiting = await start_sale(pilot, 75, phone)
        await answer(shop_till)
        await advance(pilot, shop_till, shop_till.settings.timings.reconcile_min_age_s + 1)
        assert pilot.app.screen is waiting
        await shop_till.engine.reconcile_once()
        success: Any = await wait_for_screen(pilot, SuccessScreen)
        assert success.view.stage is Stage.PAID_RECEIPT_TO_FOLLOW
        assert text_of(success, "#receipt-line") == RECEIPT_TO_FOLLOW
        assert not success.query_one("#receipt-big", BigText).display


async def test_stop_waiting_hands_over_and_the_outcome_still_arrives(
    shop_till: TillHarness,
) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        waiting = await start_sale(pilot, 60, phone)
        attempt_id = waiting.view.attempt_id
        await wait_until(pilot, lambda: app.awaiting == 1, "one awaiting")
        await pilot.press("s")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        assert "checked in the background" in checkout.notice_text
        view = await shop_till.engine.get(attempt_id)
        assert view.is_live and view.handed_to_reconciler
        await answer(shop_till)
        await wait_until(pilot, lambda: app.awaiting == 0, "none awaiting")
        assert (await shop_till.engine.get(attempt_id)).is_paid
        assert pilot.app.screen is checkout
        assert app.latest[attempt_id].is_paid


async def test_retry_pressed_while_the_prompt_is_live_says_why_and_sends_nothing(
    shop_till: TillHarness,
) -> None:
    """Issue #12 case 6: r and a on the waiting screen only changed colour."""
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        waiting = await start_sale(pilot, 65, phone)
        await wait_until(pilot, lambda: app.awaiting == 1, "one awaiting")
        for key in ("r", "a"):
            waiting.clear_notice()
            await pilot.press(key)
            await wait_until(pilot, lambda: waiting.notice_text != "", f"{key} answered")
            assert waiting.notice_text == WHY_NO_RETRY_YET
            assert app.screen is waiting
        assert len(await pushes(shop_till, phone)) == 1
        await answer(shop_till)
        await wait_for_screen(pilot, SuccessScreen)


async def test_late_payment_after_expiry_is_shown_plainly(shop_till: TillHarness) -> None:
    phone = await script(shop_till, unique_phone(), callback_delay_s=400)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 80, phone)
        await pushes_answered(shop_till)  # a reconciler pass before then finds it being sent
        await advance(pilot, shop_till, shop_till.settings.timings.attempt_expiry_s + 1)
        await shop_till.engine.reconcile_once()
        expired: Any = await wait_for_screen(pilot, FailureScreen)
        assert expired.view.state is AttemptState.EXPIRED
        # Issue #12 case 6: the status bar kept "1 awaiting outcome" after the expiry.
        await wait_until(
            pilot,
            lambda: str(expired.query_one("#status-awaiting").content) == "0 awaiting outcome",
            "the status bar to count none awaiting",
        )
        assert "OUTCOME UNKNOWN" in str(expired.query_one("#failure-title").content)
        # After EXPIRED a retry needs the cashier to confirm no M-Pesa SMS arrived.
        await advance(pilot, shop_till, 10)
        await wait_until(pilot, lambda: expired.check_action("retry", ()) is True, "retry")
        await pilot.press("r")
        confirm = await wait_for_screen(pilot, ConfirmNoSmsScreen)
        await pilot.press("escape")  # the customer is still looking
        await wait_until(pilot, lambda: pilot.app.screen is expired, "back to the failure")
        assert confirm is not pilot.app.screen
        assert len(await pushes(shop_till, phone)) == 1
        # The customer did pay, late: the callback arrives after the attempt expired.
        await shop_till.sim.advance_clock(400)
        success: Any = await wait_for_screen(pilot, SuccessScreen)
        assert success.view.late and success.view.receipt
        assert LATE in text_of(success, "#warning")
        assert "LATE" in str(success.query_one("#paid-title").content)


async def test_got_an_sms_sends_the_attempt_to_a_manager(shop_till: TillHarness) -> None:
    """Issue #11 case 8: "got an SMS" records the cashier's answer; no retry goes out."""
    phone = await script(shop_till, unique_phone(), unanswered=True, drop_callback=True)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 81, phone)
        await pushes_answered(shop_till)  # a reconciler pass before then finds it being sent
        await advance(pilot, shop_till, shop_till.settings.timings.attempt_expiry_s + 1)
        await shop_till.engine.reconcile_once()
        expired: Any = await wait_for_screen(pilot, FailureScreen)
        assert expired.view.state is AttemptState.EXPIRED
        # Issue #12 case 6: the status bar kept "1 awaiting outcome" after the expiry.
        await wait_until(
            pilot,
            lambda: str(expired.query_one("#status-awaiting").content) == "0 awaiting outcome",
            "the status bar to count none awaiting",
        )
        assert expired.view.cashier_message.startswith("Outcome unknown")
        await advance(pilot, shop_till, 10)
        await wait_until(pilot, lambda: expired.check_action("retry", ()) is True, "retry")
        await pilot.press("r")
        await wait_for_screen(pilot, ConfirmNoSmsScreen)
        await pilot.press("n")
        await wait_until(
            pilot, lambda: expired.view.state is AttemptState.NEEDS_REVIEW, "sent to a manager"
        )
        assert "NEEDS A MANAGER" in str(expired.query_one("#failure-title").content)
        assert "M-Pesa confirmation SMS" in text_of(expired, "#manager-hint")
        assert expired.check_action("retry", ()) is None
        assert len(await pushes(shop_till, phone)) == 1
        entries = await shop_till.store.audit.entries(
            shop_till.shop_id, attempt_id=int(expired.view.attempt_id)
        )
        assert any(e.detail.get("evidence") == "customer_got_sms" for e in entries)


# ---------------------------------------------------------------------------------- bad input


async def test_bad_phone_input_says_what_is_wrong_and_sends_nothing(
    shop_till: TillHarness,
) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        ref = checkout.sale_ref
        await pilot.press("5", "0", "enter")
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        cases = {
            "0712": "too short: 3 digits after 0, a Kenyan mobile number has 9",
            "07123456789": "too long: 10 digits after 0, a Kenyan mobile number has 9",
            "0812345678": "not a Kenyan mobile number: after 0 it must continue with 7 or 1",
            "+1555": "not a Kenyan mobile number: +254 is Kenya's country code",
        }
        for typed, problem in cases.items():
            await put(pilot, "#phone", "")
            await pilot.press(*typed)
            assert text_of(phone_screen, "#phone-check") == f"✖ {problem}"
            assert phone_screen.check_action("send", ()) is None
            await pilot.press("enter")
            assert pilot.app.screen is phone_screen
        assert await shop_till.engine.sale_attempts(ref) == []
        sent = await shop_till.sim.requests(shortcode=shop_till.shortcode)
        assert [r for r in sent if r.path == PUSH_PATH] == []
        await put(pilot, "#phone", "0712 345-678")
        assert text_of(phone_screen, "#phone-check") == "✔ 0712 345 678 → 254712345678"


async def test_bad_totals_are_refused_at_the_checkout(shop_till: TillHarness) -> None:
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        for typed, problem in (
            ("0", "The total must be from KES 1 to KES 250,000, got 0."),
            ("250001", "The total must be from KES 1 to KES 250,000, got 250,001."),
        ):
            await put(pilot, "#total", typed)
            assert text_of(checkout, "#total-hint") == problem
            assert checkout.check_action("pay", ()) is None
            await pilot.press("enter")
            assert pilot.app.screen is checkout
        # Cents are typed as cents and refused, never read as more shillings.
        await put(pilot, "#total", "")
        await pilot.press("1", "2", "full_stop", "5")
        assert checkout.total_text == "12.5"
        assert text_of(checkout, "#total-hint") == (
            "The total: whole shillings only (M-Pesa takes no cents)."
        )
        assert checkout.check_action("pay", ()) is None


async def test_double_press_of_pay_sends_one_prompt(shop_till: TillHarness) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await put(pilot, "#total", "45")
        await pilot.press("enter")
        await wait_for_screen(pilot, PhoneScreen)
        await put(pilot, "#phone", "0" + phone[3:])
        await pilot.press("enter", "enter", "enter")
        waiting: Any = await wait_for_screen(pilot, WaitingScreen)
        await pilot.press("enter")
        await answer(shop_till)
        await wait_for_screen(pilot, SuccessScreen)
        assert len(await pushes(shop_till, phone)) == 1
        assert len(await shop_till.engine.sale_attempts(waiting.view.sale_ref)) == 1


async def test_sale_reference_in_use_with_another_amount_is_refused(
    shop_till: TillHarness,
) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        waiting = await start_sale(pilot, 30, phone)
        ref = waiting.view.sale_ref
        await answer(shop_till)
        await wait_for_screen(pilot, SuccessScreen)
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        await put(pilot, "#sale-ref", ref)
        await put(pilot, "#total", "31")
        await pilot.press("enter")
        phone_screen = await wait_for_screen(pilot, PhoneScreen)
        await put(pilot, "#phone", "0" + (await script(shop_till, unique_phone()))[3:])
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(phone_screen.notice_text), "a refusal")
        assert pilot.app.screen is phone_screen
        assert ref in phone_screen.notice_text or "sale" in phone_screen.notice_text.lower()
        assert len(await shop_till.engine.sale_attempts(ref)) == 1


async def test_keys_typed_ahead_of_a_screen_change_are_ignored(shop_till: TillHarness) -> None:
    """An Enter can reach a new screen before it has finished building; it must not act on the
    half-built screen (it once crashed the app: the paid screen was closed before it had
    mounted)."""
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 65, phone)
        await answer(shop_till)
        paid: Any = await wait_for_screen(pilot, SuccessScreen)
        again = SuccessScreen(paid.view)
        assert again.check_action("next_sale", ()) is None
        app.switch_screen(again)
        app.post_message(events.Key("enter", "\r"))
        await wait_until(pilot, lambda: again.is_mounted, "the new paid screen")
        await pilot.pause()
        assert app.is_running and app.screen is again
        assert again.check_action("next_sale", ()) is True


async def test_paid_by_query_then_the_receipt_arrives_with_the_callback(
    quiet_till: TillHarness,
) -> None:
    phone = await script(quiet_till, unique_phone())
    app = build_app(quiet_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 95, phone)
        await answer(quiet_till)
        await wait_until(pilot, lambda: bool(quiet_till.receiver.events), "the callback")
        # The callback is held up; M-Pesa's query says paid, with no receipt number.
        await advance(pilot, quiet_till, quiet_till.settings.timings.reconcile_min_age_s + 1)
        await quiet_till.engine.reconcile_once()
        success: Any = await wait_for_screen(pilot, SuccessScreen)
        assert text_of(success, "#receipt-line") == RECEIPT_TO_FOLLOW
        for event in list(quiet_till.receiver.events):
            await quiet_till.engine.apply_callback(event)
        await wait_until(pilot, lambda: success.view.receipt is not None, "the receipt")
        assert text_of(success, "#receipt-line") == f"M-Pesa receipt {success.view.receipt}"
        assert success.query_one("#receipt-big", BigText).text == success.view.receipt
        assert app.screen is success
