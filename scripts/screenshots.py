"""Regenerate `screenshots/*.svg` from the real cashier app.

    .venv/bin/python scripts/screenshots.py

Runs what `smartduka demo` runs (the simulator and a relay on loopback, a demo shop in a
throwaway folder) and drives the app headless at 80x24 with Textual's Pilot, the way a cashier
would, saving an SVG at each step with `App.save_screenshot`. The till's clock is a ManualClock
with a fixed start, so countdowns and times are the same on every run; M-Pesa receipt numbers
come from the simulator and differ each time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smartduka_tui.cli.app import till_services  # noqa: E402
from smartduka_tui.cli.demo import demo_environment  # noqa: E402
from smartduka_tui.clock import ManualClock  # noqa: E402
from smartduka_tui.ui.app import SmartDukaApp, make_app  # noqa: E402
from smartduka_tui.ui.screens.cash import CashScreen  # noqa: E402
from smartduka_tui.ui.screens.checkout import CheckoutScreen  # noqa: E402
from smartduka_tui.ui.screens.failure import FailureScreen  # noqa: E402
from smartduka_tui.ui.screens.help import HelpScreen  # noqa: E402
from smartduka_tui.ui.screens.phone import PhoneScreen  # noqa: E402
from smartduka_tui.ui.screens.quit import ConfirmQuitScreen  # noqa: E402
from smartduka_tui.ui.screens.success import SuccessScreen  # noqa: E402
from smartduka_tui.ui.screens.waiting import WaitingScreen  # noqa: E402
from smartduka_tui.ui.services import UiOptions  # noqa: E402

OUT = ROOT / "screenshots"
SIZE = (80, 24)
START = datetime(2026, 3, 2, 7, 30, 0, tzinfo=UTC)  # 10:30 in Nairobi
PAYS, CANCELS, NEVER_ANSWERS = "0700000000", "0700000001", "0700000007"


async def until(pilot: Any, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up waiting for {what}")
        await pilot.pause(0.05)
    await pilot.pause()


async def screen(pilot: Any, kind: type) -> Any:
    await until(pilot, lambda: isinstance(pilot.app.screen, kind), kind.__name__)
    return pilot.app.screen


def save(app: SmartDukaApp, name: str) -> None:
    app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    print(f"screenshots/{name}.svg")


async def type_into(pilot: Any, selector: str, text: str) -> None:
    pilot.app.screen.query_one(selector).value = ""
    await pilot.press(*text)


async def new_sale(pilot: Any, total: str, phone: str) -> None:
    checkout = await screen(pilot, CheckoutScreen)
    await until(pilot, lambda: bool(checkout.sale_ref), "a sale reference")
    await type_into(pilot, "#total", total)
    await pilot.press("enter")
    await screen(pilot, PhoneScreen)
    await type_into(pilot, "#phone", phone)


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    clock = ManualClock(START)
    async with (
        demo_environment() as demo,
        till_services(demo.settings, clock=clock, help_sections=demo.help_sections) as services,
    ):
        app = make_app(demo.settings, services, options=UiOptions(cursor_blink=False))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: not app.connection.offline, "the connections")
            checkout = await screen(pilot, CheckoutScreen)
            await until(pilot, lambda: bool(checkout.sale_ref), "a sale reference")
            await type_into(pilot, "#total", "10.50")
            save(app, "checkout_refused")
            await type_into(pilot, "#total", "1250")
            save(app, "checkout")
            await pilot.press("f1")
            await screen(pilot, HelpScreen)
            save(app, "help")
            await pilot.press("escape")

            await pilot.press("enter")
            await screen(pilot, PhoneScreen)
            await type_into(pilot, "#phone", "0712 34")
            save(app, "phone_invalid")
            await type_into(pilot, "#phone", PAYS)
            save(app, "phone")
            await pilot.press("enter")
            success = await screen(pilot, SuccessScreen)
            line = success.query_one("#printer-line")
            await until(pilot, lambda: "printed" in str(line.content), "the receipt printed")
            save(app, "success")
            await pilot.press("enter")

            # Cash (the demo till's shift is open): the change shown large.
            checkout = await screen(pilot, CheckoutScreen)
            await until(pilot, lambda: bool(checkout.sale_ref), "a sale reference")
            await type_into(pilot, "#total", "350")
            await pilot.press("f10")
            cash = await screen(pilot, CashScreen)
            await type_into(pilot, "#cash-given", "1000")
            await pilot.press("enter")
            await until(pilot, lambda: cash.taken is not None, "the cash taken")
            save(app, "cash")
            await pilot.press("enter")

            await new_sale(pilot, "300", CANCELS)
            await pilot.press("enter")
            await screen(pilot, FailureScreen)
            clock.advance(2)
            await pilot.pause(0.2)
            save(app, "failure")
            await pilot.press("escape")

            await new_sale(pilot, "480", NEVER_ANSWERS)
            await pilot.press("enter")
            waiting = await screen(pilot, WaitingScreen)
            await until(pilot, lambda: waiting.view.prompt_deadline is not None, "the prompt")
            clock.advance(17)
            await pilot.pause(0.2)
            save(app, "waiting")
            demo.relay.stop()
            await until(pilot, lambda: app.connection.relay_down, "the relay to be missed")
            save(app, "offline")
            await pilot.press("ctrl+q")
            await screen(pilot, ConfirmQuitScreen)
            save(app, "quit")
            await pilot.press("n")


if __name__ == "__main__":
    asyncio.run(main())
