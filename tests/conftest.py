"""Session-wide harness: real server processes on loopback, unique test data, Hypothesis profiles.

Servers start once per test session (per xdist worker) on port 0; tests isolate themselves by
phone number, shortcode, shop and till instead of restarting servers.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.processes import ServerProcess

# Compile the project's sources once and let every worker and server subprocess read the cached
# bytecode. A machine that sets PYTHONDONTWRITEBYTECODE (ours do) otherwise recompiles all of
# smartduka_tui in each xdist worker and in each of the hundreds of simulator, relay and CLI
# processes the suite starts: several CPU-minutes of a 2-core run. The cache lands in the
# git-ignored __pycache__ folders, as a plain `python` run would leave it.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=300, deadline=None)
# The README's test command runs CI's bounded, derandomised profile on every machine (the dev
# profile's 300 examples cost about a tenth of the suite's time); HYPOTHESIS_PROFILE=dev asks
# for more.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


# Test phones are 25479WNNNNNN: W is the xdist worker, N a per-session counter. The simulator's
# magic numbers live in 2547000000xx, so the two never meet.
_phone_counter = itertools.count(1)


def unique_phone() -> str:
    """A Kenyan mobile number no other test in this session uses."""
    return f"25479{_worker_number() % 10}{next(_phone_counter):06d}"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def simulator(session_dir: Path) -> Iterator[ServerProcess]:
    """The Daraja simulator as a real uvicorn process on loopback, shared by the session."""
    workdir = session_dir / "simulator"
    workdir.mkdir()
    server = ServerProcess("smartduka_tui.simulator", workdir).start()
    try:
        yield server
    finally:
        server.stop()
