"""The broker on two relay instances sharing one PostgreSQL database, as behind a load balancer.

Both are real uvicorn processes; Daraja is a simulator of this test's own (so its request log
counts only this test's OAuth calls). The per-shop push limit holds across both instances, and
one token minted by one instance serves the other.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callback_relay import cli
from smartduka_tui.mpesa.callback_path import sign_new_attempt
from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.relay.conftest import bearer, cli_enrol, start_relay
from tests.relay.postgres import PostgresCluster
from tests.relay.test_instances import count_rows, relay_env
from tests.support.processes import ServerProcess

PUBLIC_URL = "http://relay.example.test"
PUSHES_PER_MINUTE = 3


@pytest.fixture
def own_simulator(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess("smartduka_tui.simulator", tmp_path / "simulator")
    server.workdir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def push_body(till: dict[str, Any]) -> dict[str, Any]:
    signed = sign_new_attempt(
        till["callback_secret"], till["shop_id"], till["till_id"], till["callback_kid"]
    )
    return {
        "amount": 10,
        "phone": unique_phone(),
        "reference": "S1",
        "description": "SmartDuka",
        "callback_url": PUBLIC_URL + signed.path(),
    }


async def test_two_instances_share_the_push_limit_and_one_oauth_token(
    tmp_path: Path,
    postgres_cluster: PostgresCluster,
    own_simulator: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, secret, passkey = secrets.token_hex(12), secrets.token_hex(12), secrets.token_hex(32)
    async with SimulatorControl(own_simulator.base_url) as sim:
        view = await sim.register_shortcode(
            passkey=passkey,
            consumer_key=key,
            consumer_secret=secret,
            settings={"callback_delay_s": 600},
        )
        url = postgres_cluster.fresh_schema()
        with relay_env(url) as env:
            monkeypatch.setattr("sys.stdin", io.StringIO(f"{key}\n{secret}\n{passkey}\n"))
            # The CLI runs its own event loop: in a thread, as an operator's shell would.
            assert await asyncio.to_thread(
                cli.main,
                ["platform", "set", "--shortcode", view.shortcode,
                 "--daraja-url", own_simulator.base_url, "--db", str(tmp_path / "cli.db")],
            ) == 0  # fmt: skip
            till = await asyncio.to_thread(
                cli_enrol, tmp_path / "cli.db", "shop", "add", "Platform shop", "--platform",
                "--prefix", "PL", "--pushes-per-minute", str(PUSHES_PER_MINUTE),
            )  # fmt: skip
            public = ("--mode", "sandbox", "--public-url", PUBLIC_URL)
            relays = [start_relay(tmp_path / f"i{n}", *public, env=env) for n in range(2)]
            try:
                async with httpx.AsyncClient(timeout=30) as client:
                    answers = []
                    # The shop's whole minute of pushes, and one more, alternating instances.
                    for n in range(PUSHES_PER_MINUTE + 2):
                        relay = relays[n % 2]
                        answers.append(
                            await client.post(
                                relay.base_url + "/v1/daraja/stk-push",
                                json=push_body(till),
                                headers=bearer(till),
                            )
                        )
            finally:
                for relay in relays:
                    relay.server.stop()
            statuses = [a.status_code for a in answers]
            assert statuses == [200] * PUSHES_PER_MINUTE + [429, 429], [a.text for a in answers]
            assert answers[-1].json()["errorCode"] == "broker.rate_limited"
            assert int(answers[-1].headers["Retry-After"]) >= 1
            assert count_rows(url, "SELECT COUNT(*) FROM broker_pushes") == PUSHES_PER_MINUTE
            assert count_rows(url, "SELECT COUNT(*) FROM broker_tokens") == 1

        requests = await sim.requests()
    pushes = [r for r in requests if r.path.endswith("/stkpush/v1/processrequest")]
    assert len(pushes) == PUSHES_PER_MINUTE, "a push over the limit never reached Daraja"
    oauth = [r for r in requests if r.path.startswith("/oauth/")]
    assert len(oauth) == 1, "one token, minted by one instance, served both"
