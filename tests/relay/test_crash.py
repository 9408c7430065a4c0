"""SIGKILL the relay during a burst of distinct callbacks: nothing that got a 2xx is lost."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.relay.conftest import attempt_path, bearer, callback_body, cli_enrol, start_relay

KILLS = 10
PROGRESS = 5


@pytest.mark.slow
async def test_every_acknowledged_callback_survives_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("RELAY_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash test seed: {seed} (rerun with RELAY_CRASH_SEED={seed})")
    rng = random.Random(seed)
    relay = start_relay(tmp_path / "crash", "--mode", "sandbox")
    shop = await asyncio.to_thread(cli_enrol, relay.db, "shop", "add", "Crash shop")
    acknowledged: set[str] = set()
    attempts = 0
    stop = asyncio.Event()

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal attempts
        while not stop.is_set():
            path = attempt_path(shop)
            attempts += 1
            try:
                response = await client.post(relay.base_url + path, content=callback_body())
            except httpx.TransportError:
                await asyncio.sleep(0.005)
                continue
            if response.status_code == 200:
                acknowledged.add(path.split("/")[5])
            else:
                assert response.status_code == 503, response.text

    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=5) as client:
            senders = [asyncio.create_task(sender(client)) for _ in range(8)]
            for _ in range(KILLS):
                # Kill during traffic: once the restarted relay has answered a few callbacks,
                # at a seeded random moment after that.
                floor = len(acknowledged) + PROGRESS
                for _ in range(2000):
                    if len(acknowledged) >= floor:
                        break
                    await asyncio.sleep(0.01)
                assert len(acknowledged) >= floor, "the relay made no progress after a restart"
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                relay.server.kill()
                await asyncio.to_thread(relay.server.start)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*senders)

            delivered: dict[int, str] = {}
            while True:
                response = await client.get(
                    relay.base_url + "/v1/events", params={"limit": 500}, headers=bearer(shop)
                )
                assert response.status_code == 200
                events = response.json()["events"]
                if not events:
                    break
                for event in events:
                    delivered[event["id"]] = event["attempt_ref"]
                    ack = await client.post(
                        f"{relay.base_url}/v1/events/{event['id']}/ack", headers=bearer(shop)
                    )
                    assert ack.status_code == 200
    finally:
        relay.server.stop()

    print(f"{attempts} attempts, {len(acknowledged)} acknowledged, {len(delivered)} delivered")
    assert len(acknowledged) >= KILLS * PROGRESS
    assert acknowledged <= set(delivered.values())
    # Each callback was stored once, whatever the kills interrupted.
    assert len(delivered) == len(set(delivered.values()))
    with sqlite3.connect(relay.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
