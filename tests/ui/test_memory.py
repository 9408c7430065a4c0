"""What a finished sale leaves in memory (issue #18: the till under 100 MB after 100 sales).

A sale's screens are closed when the checkout comes back; nothing the till keeps may hold them,
or what they drew, after that. Checked with weak references on a real sale through the real
simulator: a screen or a render cache still referenced after a collection is a leak.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

from textual.widget import Widget
from textual.worker import Worker, WorkerState

from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.screens.success import SuccessScreen
from tests.conftest import unique_phone
from tests.payments.harness import TillHarness
from tests.ui.conftest import SIZE, build_app, wait_for_screen, wait_until
from tests.ui.test_flows import answer, script, start_sale
from tests.ui.test_receipts import SALE, desk, expected, paid_sale


def drawn_by(screen: Any) -> list[weakref.ref[Any]]:
    """Weak references to `screen`, its widgets and each widget's cache of drawn lines."""
    widgets: list[Widget] = list(screen.walk_children(Widget))
    refs: list[weakref.ref[Any]] = [weakref.ref(screen)]
    refs += [weakref.ref(widget) for widget in widgets]
    refs += [weakref.ref(widget._styles_cache) for widget in widgets]
    return refs


async def test_a_finished_sale_leaves_nothing_of_its_screens(shop_till: TillHarness) -> None:
    phone = await script(shop_till, unique_phone())
    app = build_app(shop_till)
    async with app.run_test(size=SIZE) as pilot:
        await start_sale(pilot, 130, phone)
        await answer(shop_till)
        success = await wait_for_screen(pilot, SuccessScreen)
        await pilot.pause()
        kept = drawn_by(success)
        assert len(kept) > 10  # the screen drew its widgets: there is something to release
        del success
        await pilot.press("enter")
        checkout = await wait_for_screen(pilot, CheckoutScreen)
        await wait_until(pilot, lambda: checkout.sale_ref != "", "the next sale's reference")
        await pilot.pause()
        gc.collect()
        alive = [ref() for ref in kept if ref() is not None]
        assert alive == []
        # The checkout itself still draws: its own caches are in use, not released under it.
        assert checkout.query_one("#total")._styles_cache is not None


async def test_a_print_that_ends_after_the_sale_closed_fails_nothing(
    quiet_till: TillHarness, tmp_path: Path
) -> None:
    """The cashier leaves the success screen while its receipt prints (the device a FIFO
    nobody reads yet, so the print waits): when the printer then takes the receipt, the print
    ends well, although the screen it would tell is gone."""
    phone = await script(quiet_till, unique_phone())
    device = tmp_path / "lp0"
    os.mkfifo(device)
    app = build_app(quiet_till, receipts=desk(quiet_till, device))
    async with app.run_test(size=SIZE) as pilot:
        await paid_sale(pilot, quiet_till, phone)
        printing: list[Worker[None]] = [w for w in app.workers if w.group == "print"]
        assert len(printing) == 1 and not printing[0].is_finished
        await pilot.press("enter")
        await wait_for_screen(pilot, CheckoutScreen)

        def printer_wakes() -> bytes:
            with open(device, "rb") as fifo:
                return fifo.read()

        got = await asyncio.wait_for(asyncio.to_thread(printer_wakes), timeout=20)
        await wait_until(pilot, lambda: printing[0].is_finished, "the print to end")
        assert printing[0].state is WorkerState.SUCCESS, printing[0].error
        assert app.printer is not None and SALE in app.printer.printed
    assert got == expected(f"{SALE}.escpos")


async def test_an_attempt_lock_lives_while_held_and_goes_after(shop_till: TillHarness) -> None:
    """The engine's per-attempt lock is kept while someone holds it (the same one to every
    caller then), and not after: it was kept for every attempt the till ever made."""
    engine = shop_till.engine
    lock = engine.lock_for("ATT-memory-1")
    async with lock:
        assert engine.lock_for("ATT-memory-1") is lock
        assert engine.lock_for("ATT-memory-1").locked()
    gone = weakref.ref(lock)
    del lock
    gc.collect()
    assert gone() is None
    assert not engine.lock_for("ATT-memory-1").locked()


def test_the_open_till_leaves_out_httpx_command_line() -> None:
    """httpx's command line (click, pygments) stays out of a till that has loaded everything a
    sale uses, and httpx itself still works. A fresh interpreter, so nothing is loaded yet."""
    probe = (
        "import sys\n"
        "from smartduka_tui.cli.common import load_modules\n"
        "from smartduka_tui.cli.app import APP_MODULES\n"
        "load_modules(APP_MODULES)\n"
        "import httpx\n"
        "httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(204)))\n"
        "print(' '.join(name for name in ('click', 'pygments') if name in sys.modules))\n"
        "print('httpx' in sys.modules)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.splitlines() == ["", "True"], loaded.stdout
