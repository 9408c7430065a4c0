"""Fixtures for the payment engine's tests: a till on the session's real simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.payments.harness import OWNER, PAGE_SIZE, TillHarness, sim_now_clock, till
from tests.support.processes import ServerProcess


@pytest.fixture
async def shop_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    """A till whose callbacks are applied as they arrive; confirmation by query off."""
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=False) as harness:
        yield harness


@pytest.fixture
async def pull_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    """A till pulling its shortcode's statement on the real simulator, whose clock it shares
    (in a folder of its own, so it can stand beside `shop_till`)."""
    (tmp_path / "pull").mkdir()
    async with till(
        tmp_path / "pull",
        simulator.base_url,
        confirm_callbacks_by_query=False,
        clock=await sim_now_clock(simulator.base_url),
        pull={"nominated_number": OWNER, "interval_s": 0},
        sim_settings={"pull_page_size": PAGE_SIZE},
    ) as harness:
        yield harness
