"""The counter under a fast cashier: every key typed before Enter counts, in order, and what
M-Pesa cannot take is refused with words (issue #12).

Keys are posted to the app the way the terminal driver posts them: all at once, no waiting
between them (Pilot's `press` waits for the app to go idle after each key, which hides the
race). A busy worker keeps the event loop loaded, as a slow till under load would be.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual import events
from textual.keys import _character_to_key
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList

from smartduka_tui.connectivity import ConnectionBoard, Reachability
from smartduka_tui.model import AttemptState
from smartduka_tui.mpesa.requests import MAX_AMOUNT
from smartduka_tui.ui.amounts import amount_problem
from smartduka_tui.ui.app import SmartDukaApp
from smartduka_tui.ui.screens.checkout import OFFLINE_REFUSAL, TOTAL_HINT, CheckoutScreen
from smartduka_tui.ui.screens.item import ItemScreen
from smartduka_tui.ui.screens.phone import CLEAR_TO_PICK, NOTHING_TO_SEND, PhoneScreen
from smartduka_tui.ui.screens.quit import ConfirmQuitScreen
from smartduka_tui.ui.screens.sales import NO_SALES, SalesScreen, status_of
from smartduka_tui.ui.screens.success import SuccessScreen
from smartduka_tui.ui.screens.waiting import WaitingScreen
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.ui.conftest import ONLINE, SIZE, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import PUSH_PATH, answer, pushes_answered, put, script, text_of


def app_examples(most: int) -> settings:
    """One running app serves every example (each starts from a fresh sale): starting an app
    per example would cost seconds each."""
    return settings(
        max_examples=min(settings().max_examples, most),
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


S = TypeVar("S", bound=Screen[Any])


# Characters that stand for a terminal's non-printing keys in typed strings.
_NAMED = {"\r": "enter", "\x7f": "backspace", "\x01": "home", "\x05": "end"}


def driver_keys(text: str) -> list[events.Key]:
    """The key events the terminal driver posts for `text` (`\\r` is Enter, `\\x7f`
    Backspace, `\\x01` Home, `\\x05` End)."""
    return [
        events.Key(_NAMED[char], "\r" if char == "\r" else None)
        if char in _NAMED
        else events.Key(_character_to_key(char), char)
        for char in text
    ]


def as_edited(typed: str) -> str:
    """What a field holds after `typed` (no Enter in it), each Backspace taking the character
    before the cursor, Home and End moving it (a model apart from the code under test)."""
    text, cursor = "", 0
    for char in typed:
        if char == "\x7f":
            text, cursor = text[: max(cursor - 1, 0)] + text[cursor:], max(cursor - 1, 0)
        elif char == "\x01":
            cursor = 0
        elif char == "\x05":
            cursor = len(text)
        else:
            text, cursor = text[:cursor] + char + text[cursor:], cursor + 1
    return text


def type_fast(app: SmartDukaApp, text: str) -> None:
    """Post every key of `text` at once, as a terminal delivers a burst of typing."""
    for key in driver_keys(text):
        app.post_message(key)


def load_the_loop(app: SmartDukaApp) -> None:
    """A worker that keeps the event loop busy (half a millisecond of blocking work between
    yields, so every message the app handles waits behind it).

    The work blocks in `time.sleep`, which holds the loop but not the GIL. A pure-Python spin
    held the GIL as well: the store's SQLite thread then waited up to 5 ms (the switch interval)
    for each of the many times a query takes the GIL back, and on a quiet machine one query
    took seconds (20 s once: "timed out waiting for a sale reference"), a starvation no till
    sees, since its loop is idle between keys."""

    async def busy() -> None:
        while True:
            time.sleep(0.0005)  # blocking the loop is the point
            await asyncio.sleep(0)

    app.run_worker(busy(), group="busy", exclusive=True, exit_on_error=False)


@dataclass
class Counter:
    harness: TillHarness
    app: SmartDukaApp
    pilot: Any
    rings: list[None]
    """One entry per bell: a refused Enter rings it."""

    async def fresh_checkout(self) -> CheckoutScreen:
        """Back on the checkout, an empty sale with its reference, no notice."""
        while not isinstance(self.app.screen, CheckoutScreen):
            self.app.pop_screen()
            await self.pilot.pause(0.01)
        checkout = self.app.checkout
        checkout.new_sale()
        await wait_until(self.pilot, lambda: checkout.sale_ref != "", "a sale reference")
        checkout.clear_notice()
        await self.pilot.pause(0.01)
        self.rings.clear()
        return checkout

    async def on(self, screen_type: type[S]) -> S:
        """The screen on top once it is `screen_type` and mounted. (Pilot's own pause waits
        for the process to go idle, which a loaded loop never does: a second per call.)"""
        await wait_until(
            self.pilot,
            lambda: isinstance(self.app.screen, screen_type) and self.app.screen.is_mounted,
            screen_type.__name__,
        )
        screen = self.app.screen
        assert isinstance(screen, screen_type)
        return screen

    async def to_phone_screen(self, total: int) -> PhoneScreen:
        await self.fresh_checkout()
        type_fast(self.app, f"{total}\r")
        return await self.on(PhoneScreen)

    async def pushed(self, phone: str) -> list[Any]:
        # The waiting screen shows before the push has reached the simulator's log.
        await pushes_answered(self.harness)
        return [r for r in await self.harness.sim.requests(phone=phone) if r.path == PUSH_PATH]


@pytest.fixture
async def counter(
    shop_till: TillHarness, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Counter]:
    """The app on a real till, its event loop loaded by a busy worker."""
    app = build_app(shop_till)
    rings: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(None))
    async with app.run_test(size=SIZE) as pilot:
        load_the_loop(app)
        yield Counter(shop_till, app, pilot, rings)
        app.workers.cancel_group(app, "busy")
        # Keys still bubbling up when the app closes would find no screen to run against.
        await pilot.pause(0.1)


@pytest.fixture
async def calm_counter(
    shop_till: TillHarness, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Counter]:
    """The app on a real till, for tests that press keys one at a time."""
    app = build_app(shop_till)
    rings: list[None] = []
    monkeypatch.setattr(app, "bell", lambda: rings.append(None))
    async with app.run_test(size=SIZE) as pilot:
        yield Counter(shop_till, app, pilot, rings)


def expected_total(typed: str) -> int | None:
    """What a cashier means by `typed`, if M-Pesa can take it: digits, or thousands grouped by
    commas, from 1 to 250,000 (written apart from the code under test on purpose)."""
    text = typed.strip()
    if not re.fullmatch(r"[0-9]+|[0-9]{1,3}(,[0-9]{3})+", text):
        return None
    amount = int(text.replace(",", ""))
    return amount if 1 <= amount <= MAX_AMOUNT else None


# ------------------------------------------------------------------------------- amounts


@app_examples(25)
@given(typed=st.text(alphabet="0123456789.,-+e ", min_size=1, max_size=8))
async def test_the_total_sent_is_the_total_typed_or_a_clear_refusal(
    counter: Counter, typed: str
) -> None:
    checkout = await counter.fresh_checkout()
    ref = checkout.sale_ref
    type_fast(counter.app, typed + "\r")
    await wait_until(
        counter.pilot,
        lambda: isinstance(counter.app.screen, PhoneScreen) or bool(counter.rings),
        "the phone screen or a refusal",
    )
    expected = expected_total(typed)
    if expected is None:
        assert counter.app.screen is checkout
        problem = amount_problem(typed)
        assert problem and text_of(checkout, "#total-hint") == problem
        assert checkout.query_one("#total-hint").has_class("-error")
        assert checkout.total_text == typed
        assert await counter.harness.engine.sale_attempts(ref) == []
    else:
        phone_screen = counter.app.screen
        assert isinstance(phone_screen, PhoneScreen)
        assert (phone_screen.amount, phone_screen.sale_ref) == (expected, ref)


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("10.50", "The total: whole shillings only (M-Pesa takes no cents)."),
        ("-5", "The total cannot be negative."),
        ("5e3", "The total must be plain digits: 5e3 is not read as a power of ten."),
        ("1,00", "The total: put commas only between groups of three digits (1,250)."),
    ],
    ids=["decimals", "sign", "exponent", "separator"],
)
async def test_a_total_m_pesa_cannot_take_is_refused_as_typed(
    counter: Counter, typed: str, problem: str
) -> None:
    """Issue case 1: 10.50 became 1,050, -5 became 5, 5e3 became 53, each straight to pay."""
    checkout = await counter.fresh_checkout()
    ref = checkout.sale_ref
    type_fast(counter.app, typed)
    await wait_until(counter.pilot, lambda: checkout.total_text == typed, "the typed total")
    await counter.pilot.pause()
    assert text_of(checkout, "#total-hint") == problem
    assert checkout.check_action("pay", ()) is None
    type_fast(counter.app, "\r")
    await wait_until(counter.pilot, lambda: bool(counter.rings), "the refusal")
    assert text_of(checkout, "#total-hint") == problem
    assert counter.app.screen is checkout and checkout.total_text == typed
    assert await counter.harness.engine.sale_attempts(ref) == []


@app_examples(25)
@given(typed=st.text(alphabet="0123456789.\x7f\x01\x05", min_size=1, max_size=10))
async def test_editing_keys_typed_fast_keep_their_place_among_the_digits(
    counter: Counter, typed: str
) -> None:
    """Found in tmux after issue #12: "16010.50", six Backspaces and "160" typed in one burst
    became 16010 (Textual ran the Backspaces after the digits that followed them)."""
    checkout = await counter.fresh_checkout()
    ref = checkout.sale_ref
    meant = as_edited(typed)
    type_fast(counter.app, typed + "\r")
    await wait_until(
        counter.pilot,
        lambda: isinstance(counter.app.screen, PhoneScreen) or bool(counter.rings),
        "the phone screen or a refusal",
    )
    expected = expected_total(meant)
    if expected is None:
        assert counter.app.screen is checkout and checkout.total_text == meant
        assert await counter.harness.engine.sale_attempts(ref) == []
    else:
        phone_screen = counter.app.screen
        assert isinstance(phone_screen, PhoneScreen)
        assert (phone_screen.amount, phone_screen.sale_ref) == (expected, ref)


@pytest.mark.parametrize(
    ("typed", "total"),
    [("16010.50" + "\x7f" * 6 + "160", 16160), ("160\x019", 9160), ("15\x7f\x7f\x7f40", 40)],
    ids=["backspaces", "home", "backspace-past-the-start"],
)
async def test_a_burst_with_editing_keys_pays_what_the_field_showed(
    counter: Counter, typed: str, total: int
) -> None:
    await counter.fresh_checkout()
    type_fast(counter.app, typed + "\r")
    phone_screen = await counter.on(PhoneScreen)
    assert phone_screen.amount == total


async def test_digits_racing_enter_reach_m_pesa_whole(counter: Counter) -> None:
    """Issue case 2: 160 -> 16, 490 -> 49, 510 -> 51 with keys 10 ms apart, and an Enter sent
    with the digits swallowed. The simulator's log shows what was pushed."""
    for total in (160, 490, 510):
        phone = await script(counter.harness, unique_phone())
        await counter.to_phone_screen(total)
        type_fast(counter.app, "0" + phone[3:] + "\r")
        waiting: Any = await counter.on(WaitingScreen)
        assert (waiting.view.amount, waiting.view.phone) == (total, phone)
        [push] = await counter.pushed(phone)
        assert (push.body["Amount"], push.body["PhoneNumber"]) == (total, phone)


# -------------------------------------------------------------------------------- phones


@app_examples(10)
@given(
    form=st.sampled_from(
        ["0{a}{b}{c}", "+254{a}{b}{c}", "254{a}{b}{c}", "0{a} {b} {c}", "+254 {a}-{b}-{c}"]
    ),
    junk=st.sampled_from(["", "x", ".", "#"]),
    where=st.integers(min_value=0, max_value=12),
)
async def test_the_phone_pushed_is_the_phone_typed_or_a_clear_refusal(
    counter: Counter, form: str, junk: str, where: int
) -> None:
    phone = await script(counter.harness, unique_phone())
    local = phone[3:]
    typed = form.format(a=local[:3], b=local[3:6], c=local[6:])
    typed = typed[:where] + junk + typed[where:]
    phone_screen = await counter.to_phone_screen(75)
    type_fast(counter.app, typed + "\r")
    await wait_until(
        counter.pilot,
        lambda: isinstance(counter.app.screen, WaitingScreen) or bool(counter.rings),
        "the waiting screen or a refusal",
    )
    if junk:
        assert counter.app.screen is phone_screen
        assert phone_screen.query_one("#phone", Input).value == typed
        check = text_of(phone_screen, "#phone-check")
        assert check.startswith("✖ ") and phone_screen.query_one("#phone-check").has_class("-error")
        assert await counter.pushed(phone) == []
    else:
        waiting: Any = await counter.on(WaitingScreen)
        assert waiting.view.phone == phone
        assert [p.body["PhoneNumber"] for p in await counter.pushed(phone)] == [phone]


async def test_typing_after_an_arrow_key_goes_to_the_field_and_wins(counter: Counter) -> None:
    """Issue case 3: after ↓ the digits went nowhere and Enter sent the prompt to the
    highlighted recent number."""
    recent_phone = await script(counter.harness, unique_phone())
    await counter.to_phone_screen(30)
    type_fast(counter.app, "0" + recent_phone[3:] + "\r")
    await counter.on(WaitingScreen)

    typed_phone = await script(counter.harness, unique_phone())
    phone_screen = await counter.to_phone_screen(40)
    await wait_until(counter.pilot, lambda: bool(phone_screen.recent), "recent phones")
    counter.app.post_message(events.Key("down", None))
    type_fast(counter.app, "0" + typed_phone[3:] + "\r")
    waiting: Any = await counter.on(WaitingScreen)
    assert waiting.view.phone == typed_phone
    assert await counter.pushed(recent_phone) and len(await counter.pushed(recent_phone)) == 1
    assert len(await counter.pushed(typed_phone)) == 1


async def test_a_recent_number_is_marked_without_wrapping_and_only_while_nothing_is_typed(
    calm_counter: Counter,
) -> None:
    phones = [await script(calm_counter.harness, unique_phone()) for _ in range(2)]
    for phone in phones:
        await calm_counter.to_phone_screen(20)
        type_fast(calm_counter.app, "0" + phone[3:] + "\r")
        await wait_for_screen(calm_counter.pilot, WaitingScreen)
    # Both paid, so either phone may be asked again.
    await answer(calm_counter.harness)
    await wait_until(calm_counter.pilot, lambda: calm_counter.app.awaiting == 0, "both paid")
    phone_screen = await calm_counter.to_phone_screen(25)
    await wait_until(calm_counter.pilot, lambda: len(phone_screen.recent) >= 2, "recent phones")
    assert phone_screen.recent[:2] == phones[::-1]
    listed = phone_screen.query_one("#recent", OptionList)
    assert not listed.can_focus
    shown = [str(listed.get_option_at_index(i).prompt) for i in range(2)]
    assert shown == [f"07** *** {p[-3:]}" for p in phones[::-1]]
    for _ in range(len(phone_screen.recent) + 2):
        await calm_counter.pilot.press("down")
    assert phone_screen.marked == len(phone_screen.recent) - 1
    assert phone_screen.focused is phone_screen.query_one("#phone", Input)
    for _ in range(len(phone_screen.recent)):
        await calm_counter.pilot.press("up")
    assert phone_screen.marked is None
    await calm_counter.pilot.press("enter")
    assert text_of(phone_screen, "#phone-check") == f"✖ {NOTHING_TO_SEND}"
    assert calm_counter.rings
    await calm_counter.pilot.press("down")
    assert phone_screen.chosen_phone() == phones[1]
    await calm_counter.pilot.press("0")
    assert phone_screen.marked is None and phone_screen.chosen_phone() is None
    await calm_counter.pilot.press("down")
    assert phone_screen.notice_text == CLEAR_TO_PICK and phone_screen.marked is None
    await calm_counter.pilot.press("backspace", "down", "enter")
    waiting = await wait_for_screen(calm_counter.pilot, WaitingScreen)
    assert waiting.view.phone == phones[1]
    assert len(await calm_counter.pushed(phones[1])) == 2


# ------------------------------------------------------------------- the rest of the sale


async def test_removing_the_last_item_removes_its_total(calm_counter: Counter) -> None:
    """Issue case 4: KES 37,100 stayed after the last item went, and Enter paid it."""
    checkout = await calm_counter.fresh_checkout()
    ref = checkout.sale_ref
    await calm_counter.pilot.press("f3")
    item = await wait_for_screen(calm_counter.pilot, ItemScreen)
    await put(calm_counter.pilot, "#item-name", "Fridge")
    await put(calm_counter.pilot, "#item-price", "37,100")
    await calm_counter.pilot.press("enter")
    await wait_for_screen(calm_counter.pilot, CheckoutScreen)
    assert item not in calm_counter.app.screen_stack
    assert checkout.total_text == "37100"
    table = checkout.query_one("#items", DataTable)
    assert table.has_focus
    await calm_counter.pilot.press("delete")
    assert checkout.items == [] and checkout.total_text == ""
    await calm_counter.pilot.press("enter")
    assert calm_counter.app.screen is checkout
    assert text_of(checkout, "#total-hint") == "Type the total in whole shillings."
    assert calm_counter.rings
    assert await calm_counter.harness.engine.sale_attempts(ref) == []


@pytest.mark.parametrize(
    ("price", "problem"),
    [
        ("185.50", "The price: whole shillings only (M-Pesa takes no cents)."),
        ("-185", "The price cannot be negative."),
    ],
)
async def test_an_item_price_m_pesa_cannot_take_is_refused(
    counter: Counter, price: str, problem: str
) -> None:
    """Issue case 1: an item price of 185.50 became 18,550."""
    checkout = await counter.fresh_checkout()
    await counter.pilot.press("f3")
    item = await counter.on(ItemScreen)
    type_fast(counter.app, "Sugar")
    counter.app.post_message(events.Key("tab", "\t"))
    counter.app.post_message(events.Key("tab", "\t"))
    type_fast(counter.app, price + "\r")
    await wait_until(counter.pilot, lambda: text_of(item, "#item-problem") != "", "a problem")
    assert text_of(item, "#item-problem") == problem
    assert item.query_one("#item-price", Input).value == price
    assert counter.app.screen is item and checkout.items == []


async def test_an_item_typed_fast_is_added_whole(counter: Counter) -> None:
    checkout = await counter.fresh_checkout()
    await counter.pilot.press("f3")
    await counter.on(ItemScreen)
    type_fast(counter.app, "Sugar")
    counter.app.post_message(events.Key("tab", "\t"))
    counter.app.post_message(events.Key("backspace", "\x7f"))
    type_fast(counter.app, "3")
    counter.app.post_message(events.Key("tab", "\t"))
    type_fast(counter.app, "185\r")
    await counter.on(CheckoutScreen)
    await wait_until(counter.pilot, lambda: bool(checkout.items), "the item line")
    assert [(i.name, i.quantity, i.unit_price) for i in checkout.items] == [("Sugar", 3, 185)]
    assert checkout.total_text == "555"


async def test_a_sale_reference_too_long_is_refused_at_once_and_f4_resets_it(
    calm_counter: Counter,
) -> None:
    """Issue case 7: the field took 12 characters though the limit is 12 minus the prefix, the
    error appeared only after the phone, and F4 kept the bad reference."""
    checkout = await calm_counter.fresh_checkout()
    suggested = checkout.sale_ref
    longest = 12 - len(calm_counter.harness.engine.shop.account_prefix)
    await put(calm_counter.pilot, "#sale-ref", "R" * (longest + 1))
    problem = text_of(checkout, "#total-hint")
    assert problem == f"Sale reference must be at most {longest} characters, got {longest + 1}."
    await put(calm_counter.pilot, "#total", "50")
    assert text_of(checkout, "#total-hint") == problem
    await calm_counter.pilot.press("enter")
    assert calm_counter.app.screen is checkout and calm_counter.rings
    assert text_of(checkout, "#total-hint") == problem
    await put(calm_counter.pilot, "#sale-ref", "R" * longest)
    assert text_of(checkout, "#total-hint") == TOTAL_HINT
    await put(calm_counter.pilot, "#sale-ref", "S-1")
    assert "letters and digits only" in text_of(checkout, "#total-hint")
    await calm_counter.pilot.press("f4")
    await wait_until(
        calm_counter.pilot, lambda: checkout.sale_ref == suggested, "the reference back"
    )
    assert checkout.total_text == "" and checkout.ref_problem() is None


async def test_enter_on_an_empty_total_says_so(counter: Counter) -> None:
    """Issue case 6: Enter on an empty total said nothing."""
    checkout = await counter.fresh_checkout()
    type_fast(counter.app, "\r")
    await wait_until(counter.pilot, lambda: bool(counter.rings), "a refusal")
    assert text_of(checkout, "#total-hint") == "Type the total in whole shillings."
    assert checkout.query_one("#total-hint").has_class("-error")


@pytest.mark.parametrize("down", [Reachability.UNREACHABLE, Reachability.NOT_ANSWERING])
async def test_enter_while_m_pesa_is_down_says_so(
    shop_till: TillHarness, down: Reachability
) -> None:
    """Issue cases 6 and 8: Enter while M-Pesa was offline said nothing; while it was hung
    (not answering) the sale went on to spend 20 s on "Sending...". Both refuse at once."""
    board = ConnectionBoard(ONLINE)
    app = build_app(shop_till, board=board)
    async with app.run_test(size=SIZE) as pilot:
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "a sale reference")
        board.set(daraja=down)
        await wait_until(pilot, lambda: app.connection.daraja_down, "M-Pesa down")
        type_fast(app, "80\r")
        await wait_until(pilot, lambda: bool(checkout.notice_text), "a notice")
        assert checkout.notice_text == OFFLINE_REFUSAL
        assert app.screen is checkout
        assert await shop_till.engine.sale_attempts(checkout.sale_ref) == []


# ------------------------------------------------------------------- quitting, restarting


async def test_quitting_with_a_payment_waiting_asks_and_says_it_stays_safe(
    calm_counter: Counter,
) -> None:
    """Issue case 5: Ctrl+Q with a payment in flight quit without a word."""
    phone = await script(calm_counter.harness, unique_phone())
    await calm_counter.to_phone_screen(35)
    type_fast(calm_counter.app, "0" + phone[3:] + "\r")
    waiting = await wait_for_screen(calm_counter.pilot, WaitingScreen)
    await calm_counter.pilot.press("ctrl+q")
    dialog = await wait_for_screen(calm_counter.pilot, ConfirmQuitScreen)
    words = text_of(dialog, "#quit-text")
    assert words.startswith("1 payment is still waiting for M-Pesa's answer.")
    assert "It stays safe if you close" in words
    await calm_counter.pilot.press("n")
    await wait_for_screen(calm_counter.pilot, WaitingScreen)
    assert calm_counter.app.is_running and calm_counter.app.screen is waiting
    await calm_counter.pilot.press("ctrl+q")
    await wait_for_screen(calm_counter.pilot, ConfirmQuitScreen)
    await calm_counter.pilot.press("y")
    await wait_until(calm_counter.pilot, lambda: not calm_counter.app.is_running, "the exit")
    assert calm_counter.app.return_code == 0
    [kept] = await calm_counter.harness.engine.sale_attempts(waiting.view.sale_ref)
    assert kept.is_live


async def test_quitting_with_nothing_waiting_closes_at_once(calm_counter: Counter) -> None:
    await calm_counter.fresh_checkout()
    await calm_counter.pilot.press("ctrl+q")
    await wait_until(calm_counter.pilot, lambda: not calm_counter.app.is_running, "the exit")
    assert not any(isinstance(s, ConfirmQuitScreen) for s in calm_counter.app.screen_stack)


async def test_a_restart_names_the_payments_left_waiting(shop_till: TillHarness) -> None:
    """Issue case 5: after a restart the pending payment showed only in a passing notice,
    minutes later."""
    for total in (41, 42):
        phone = await script(shop_till, unique_phone())
        await shop_till.engine.start_payment(f"R{total}", total, phone)
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: bool(checkout.notice_text), "the notice")
        assert checkout.notice_text == (
            "2 payments are still waiting from before; checking with M-Pesa now (F2)."
        )


async def test_the_awaiting_count_and_the_start_up_notice_follow_the_payments(
    shop_till: TillHarness,
) -> None:
    """Issue case 6: "1 awaiting outcome" after expiry, and status lines stale for minutes.
    Across a restart, a result and an expiry, the bar counts what is live and the notice
    about the payments left waiting says how many still are, then goes."""
    answered = await script(shop_till, unique_phone())
    silent = await script(shop_till, unique_phone(), unanswered=True, drop_callback=True)
    for total, phone in ((43, answered), (44, silent)):
        await shop_till.engine.start_payment(f"R{total}", total, phone)
    app = build_app(shop_till)  # the till restarted with two payments left waiting
    async with app.run_test(size=SIZE) as pilot:
        checkout: Any = await wait_for_screen(pilot, CheckoutScreen)

        def bar() -> str:
            return str(checkout.query_one("#status-awaiting").content)

        await wait_until(pilot, lambda: bar() == "2 awaiting outcome", "two counted")
        await wait_until(pilot, lambda: bool(checkout.notice_text), "the notice")
        assert checkout.notice_text.startswith("2 payments are still waiting from before")
        await answer(shop_till)
        await wait_until(pilot, lambda: bar() == "1 awaiting outcome", "the paid one uncounted")
        await wait_until(
            pilot,
            lambda: checkout.notice_text.startswith("1 payment is still waiting from before"),
            "the notice to say one",
        )
        shop_till.clock.advance(shop_till.settings.timings.attempt_expiry_s + 1)
        await shop_till.engine.reconcile_once()
        await wait_until(pilot, lambda: bar() == "0 awaiting outcome", "the expired uncounted")
        await wait_until(
            pilot, lambda: "still waiting" not in checkout.notice_text, "the notice gone"
        )
        [expired] = await shop_till.engine.sale_attempts("R44")
        assert expired.state is AttemptState.EXPIRED


# ------------------------------------------------------------------------ today's sales


async def test_a_sale_left_waiting_is_reopened_from_todays_sales(calm_counter: Counter) -> None:
    """Build: the cashier's list of today's and pending sales (F2) reopens a sale after
    "stop waiting"; its outcome then shows on its own screen."""
    paid_phone = await script(calm_counter.harness, unique_phone())
    left_phone = await script(calm_counter.harness, unique_phone())
    for total, phone in ((55, paid_phone), (66, left_phone)):
        await calm_counter.to_phone_screen(total)
        type_fast(calm_counter.app, "0" + phone[3:] + "\r")
        await wait_for_screen(calm_counter.pilot, WaitingScreen)
        await calm_counter.pilot.press("s")
        await wait_for_screen(calm_counter.pilot, CheckoutScreen)
    await calm_counter.pilot.press("f2")
    sales: Any = await wait_for_screen(calm_counter.pilot, SalesScreen)
    await wait_until(calm_counter.pilot, lambda: len(sales.views) == 2, "the two sales")
    amounts = [v.amount for v in sales.views]
    assert sorted(amounts) == [55, 66]
    assert all(status_of(v) == "waiting for M-Pesa" for v in sales.views)
    await calm_counter.pilot.press(*["down"] * amounts.index(55), "enter")
    waiting = await wait_for_screen(calm_counter.pilot, WaitingScreen)
    assert waiting.view.phone == paid_phone
    await answer(calm_counter.harness)
    paid: Any = await wait_for_screen(calm_counter.pilot, SuccessScreen)
    assert paid.view.amount == 55 and paid.view.receipt
    assert len(await calm_counter.pushed(paid_phone)) == 1


async def test_todays_sales_with_none_says_so(calm_counter: Counter) -> None:
    await calm_counter.fresh_checkout()
    await calm_counter.pilot.press("f2")
    sales: Any = await wait_for_screen(calm_counter.pilot, SalesScreen)
    await wait_until(calm_counter.pilot, lambda: text_of(sales, "#sales-count") == NO_SALES, "")
    assert sales.check_action("open", ()) is None
    await calm_counter.pilot.press("escape")
    await wait_for_screen(calm_counter.pilot, CheckoutScreen)
