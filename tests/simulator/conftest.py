"""Fixtures: the session simulator over loopback, an in-process one on a manual clock, a callback
receiver on loopback, and a fresh shop per test.

Every async test here runs on one session-wide event loop (`pytestmark` in each module), so the
receiver and the HTTP clients start once; tests isolate themselves by shortcode, phone and
callback path instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from smartduka_tui.clock import ManualClock
from smartduka_tui.simulator import cli
from smartduka_tui.simulator.app import create_app
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.simulator.engine import Simulator, SimulatorConfig
from tests.simulator.support import CallbackReceiver, Daraja, Shop, register_shop
from tests.support.processes import ServerProcess


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as server:
        yield server


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http(simulator: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=simulator.base_url, timeout=15, trust_env=False
    ) as client:
        yield client


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control(simulator: ServerProcess) -> AsyncIterator[SimulatorControl]:
    async with SimulatorControl(simulator.base_url) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def shop(control: SimulatorControl) -> Shop:
    return await register_shop(control)


@pytest_asyncio.fixture(loop_scope="session")
async def daraja(http: httpx.AsyncClient, shop: Shop) -> Daraja:
    return Daraja(http, shop)


@dataclass
class InProcess:
    """A simulator app in this process on a ManualClock: time moves only when a test says."""

    simulator: Simulator
    clock: ManualClock
    http: httpx.AsyncClient
    control: SimulatorControl


@pytest_asyncio.fixture(loop_scope="session")
async def inproc() -> AsyncIterator[InProcess]:
    clock = ManualClock()
    app = create_app(SimulatorConfig(), clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client,
        SimulatorControl("http://sim.test", transport=transport) as control,
    ):
        yield InProcess(app.state.simulator, clock, client, control)


CliRunner = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def sim(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run `smartduka-sim ARGS...` in a worker thread (it runs its own event loop) and return
    its exit code, stdout and stderr."""

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
