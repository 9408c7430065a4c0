"""End-to-end fixtures: the session's simulator (tests/conftest.py), one relay process shared
by the session (tests that stop a relay start their own), and the platform's paybill set on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from smartduka_tui.simulator.control import SimulatorControl
from tests.integration.support import Platform, PlatformCreds, RelayHandle, start_relay
from tests.support.processes import ServerProcess
from tests.support.tls import TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayHandle]:
    handle = start_relay(tmp_path_factory.mktemp("relay"))
    try:
        yield handle
    finally:
        handle.server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1, made for this session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def production_relay(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[RelayHandle]:
    """A production-mode relay serving https on 127.0.0.1 under the session's test CA."""
    handle = start_relay(tmp_path_factory.mktemp("relay-production"), tls=tls_files)
    try:
        yield handle
    finally:
        handle.server.stop()


@pytest.fixture
def trust_test_ca(tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Clients made in this test (till, relay client) trust the session's test CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_file))
    return tls_files.ca_file


@pytest.fixture(scope="session")
def platform(relay: RelayHandle, simulator: ServerProcess) -> Platform:
    """The platform's paybill: a shortcode with its own app on the simulator, set at the relay
    with `smartduka-relay platform set` (secrets on standard input)."""
    import asyncio

    creds = PlatformCreds()

    async def register() -> str:
        async with SimulatorControl(simulator.base_url) as sim:
            view = await sim.register_shortcode(
                passkey=creds.passkey,
                consumer_key=creds.key,
                consumer_secret=creds.secret,
                settings={"callback_delay_s": 0.3},
            )
        return view.shortcode

    shortcode = asyncio.run(register())
    relay.set_platform(shortcode, simulator.base_url, creds)
    return Platform(shortcode, creds)


@pytest.fixture
async def sim(simulator: ServerProcess) -> AsyncIterator[SimulatorControl]:
    async with SimulatorControl(simulator.base_url) as control:
        yield control


@pytest.fixture
def relay_workdir(tmp_path: Path) -> Path:
    return tmp_path / "own-relay"
