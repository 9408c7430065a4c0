"""Store test fixtures: a manual clock, a keyring in tmp_path, an open store; and the
end-of-session scan for canary secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.store import Keyring, Store, create_keyring
from tests.store.canaries import registered, scan


@pytest.fixture(scope="session", autouse=True)
def no_canary_on_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After every test has run, no file the tests wrote holds a canary secret."""
    yield
    root = tmp_path_factory.getbasetemp()
    findings = scan(root, registered())
    assert not findings, "plaintext secrets reached disk:\n" + "\n".join(findings)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return create_keyring(tmp_path / "keys" / "keyring")


@pytest.fixture
async def store(tmp_path: Path, clock: ManualClock, keyring: Keyring) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "till.db", clock=clock, keyring=keyring)
    try:
        yield opened
    finally:
        await opened.close()
