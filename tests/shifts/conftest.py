"""Shift test fixtures: a real till database (shop `duka1`, till `till1`) on a manual clock at
the manager tests' fixed start, with the end-of-session scan for canary secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.store import Keyring, Store, create_keyring
from tests.manager.conftest import FIXED_SECRETS, SHOP, START, TILL, add_shop
from tests.store.conftest import no_canary_on_disk  # noqa: F401 - the end-of-session scan

__all__ = ["SHOP", "TILL"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return create_keyring(tmp_path / "keys" / "keyring")


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock, keyring: Keyring) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        await add_shop(opened, FIXED_SECRETS)
        yield opened
    finally:
        await opened.close()
