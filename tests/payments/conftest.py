"""Fixtures for the payment engine's tests: a till on the session's real simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.payments.harness import TillHarness, till
from tests.support.processes import ServerProcess


@pytest.fixture
async def shop_till(tmp_path: Path, simulator: ServerProcess) -> AsyncIterator[TillHarness]:
    """A till whose callbacks are applied as they arrive; confirmation by query off."""
    async with till(tmp_path, simulator.base_url, confirm_callbacks_by_query=False) as harness:
        yield harness
