"""The till's modules load on a thread behind the painted checkout (issue #18).

`SmartDukaApp.load_behind` is how the console script loads them once the checkout has painted.
Here the import lasts as long as the test holds its gate (no timing): every digit typed while
it runs reaches the total, in order, before the import is done. The keys are posted as the
terminal driver posts them: Pilot's `press` also waits for the process to look idle after each
key, which it never does while an import keeps a thread busy.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from functools import partial
from pathlib import Path

import pytest
from textual import events

from smartduka_tui.ui.app import make_app
from smartduka_tui.ui.screens.checkout import CheckoutScreen
from smartduka_tui.ui.services import UiOptions
from tests.support.import_gate import slow_module
from tests.ui.conftest import SIZE, wait_until


async def test_digits_typed_while_the_modules_load_all_arrive_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name, gate = slow_module(tmp_path)
    app = make_app(options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        await app.painted.wait()
        checkout = app.screen
        assert isinstance(checkout, CheckoutScreen) and not app.is_open
        loading = asyncio.create_task(app.load_behind(partial(importlib.import_module, name)))
        try:
            await wait_until(pilot, gate.started.is_set, "the import to start")
            for key in (*"9012345678", "backspace", "7"):
                app.post_message(events.Key(key, key if len(key) == 1 else None))
            await wait_until(pilot, lambda: len(checkout.total_text) == 10, "the keys typed")
            assert checkout.total_text == "9012345677"
            assert not loading.done()  # the keys came in while the import still ran
        finally:
            gate.opened.set()
        await loading
        assert name in sys.modules
        await pilot.press("6")
        assert checkout.total_text == "90123456776"


async def test_a_module_that_fails_to_load_says_so_to_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console script turns a failed import into its plain stop: the error must come back
    from the thread, not vanish there."""
    monkeypatch.syspath_prepend(str(tmp_path))
    app = make_app(options=UiOptions(cursor_blink=False))
    async with app.run_test(size=SIZE):
        await app.painted.wait()
        with pytest.raises(ModuleNotFoundError, match="no_such_till_module"):
            await app.load_behind(partial(importlib.import_module, "no_such_till_module"))
        assert app.screen is app.checkout and app.is_running
