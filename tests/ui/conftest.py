"""Fixtures for the cashier app's tests: the real app (`make_app`) on a real till.

The till is the payment engine's own test harness: a real SQLite store in tmp_path, a fresh
shortcode on the session's real simulator, callbacks POSTed by the simulator to a loopback
receiver that checks the signed path and hands them to the engine (as the relay's feed does),
and one ManualClock shared by the engine and the app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

from smartduka_tui.connectivity import ConnectionBoard, ConnectionState, Reachability
from smartduka_tui.receipts.desk import ReceiptDesk
from smartduka_tui.ui.app import SmartDukaApp, make_app
from smartduka_tui.ui.services import AppServices, HelpSection, TillIdentity, UiOptions
from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess

SIZE = (80, 24)
ONLINE = ConnectionState(daraja=Reachability.REACHABLE, relay=Reachability.REACHABLE)


@pytest.fixture
async def shop_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    """A till whose callbacks are applied the moment they arrive; confirmation by query off."""
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=False) as harness:
        yield harness


@pytest.fixture
async def quiet_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    """Callbacks reach the receiver and are kept, not applied: the test applies them."""
    async with till(
        tmp_path, simulator.base_url, confirm_callbacks_by_query=False, apply_callbacks=False
    ) as harness:
        yield harness


def services_for(
    harness: TillHarness,
    *,
    board: ConnectionBoard | None = None,
    help_sections: tuple[HelpSection, ...] = (),
    receipts: ReceiptDesk | None = None,
) -> AppServices:
    """The app's services on the harness's till."""
    return AppServices(
        payments=harness.engine,
        clock=harness.clock,
        identity=TillIdentity(
            harness.shop_id, harness.till_id, "Test Duka", harness.engine.shop.account_prefix
        ),
        connection=board or ConnectionBoard(ONLINE),
        help_sections=help_sections,
        receipts=receipts,
    )


def build_app(
    harness: TillHarness,
    *,
    board: ConnectionBoard | None = None,
    help_sections: tuple[HelpSection, ...] = (),
    receipts: ReceiptDesk | None = None,
    **kwargs: Any,
) -> SmartDukaApp:
    services = services_for(harness, board=board, help_sections=help_sections, receipts=receipts)
    return make_app(harness.settings, services, options=UiOptions(cursor_blink=False), **kwargs)


async def wait_until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, timeout: float = 20
) -> None:
    """Let the app and the engine run until `condition` holds (bounded, real time: the work is
    loopback HTTP and SQLite, so this is about not hanging, not about speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; screen is {pilot.app.screen!r}")
        await pilot.pause(0.02)


ScreenT = TypeVar("ScreenT", bound=Screen[Any])


async def wait_for_screen(
    pilot: Pilot[Any], screen_type: type[ScreenT], timeout: float = 20
) -> ScreenT:
    await wait_until(
        pilot, lambda: isinstance(pilot.app.screen, screen_type), screen_type.__name__, timeout
    )
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, screen_type)
    return screen


def showing(app: App[Any], screen: Screen[Any]) -> bool:
    """True when `screen` is the one on top. A call rather than `app.screen is screen`, which
    makes mypy narrow `screen` to `Screen[object]` (screens are invariant in their result)."""
    return app.screen is screen


async def advance(pilot: Pilot[Any], harness: TillHarness, seconds: float) -> None:
    """Move the till's clock (engine and app) and let both react."""
    harness.clock.advance(seconds)
    await pilot.pause()
    await asyncio.sleep(0)
    await pilot.pause()
