"""Several relay processes on one PostgreSQL database, as behind a load balancer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.relay.conftest import (
    TEST_KEY,
    RelayProcess,
    attempt_path,
    bearer,
    callback_body,
    cli_enrol,
    start_relay,
)
from tests.relay.postgres import PostgresCluster


@contextlib.contextmanager
def relay_env(url: str) -> Iterator[dict[str, str]]:
    """The settings every instance and the in-process CLI share: one database, one key."""
    env = {"SMARTDUKA_RELAY_DATABASE_URL": url, "SMARTDUKA_RELAY_ENCRYPTION_KEY": TEST_KEY}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_instances(tmp_path: Path, env: dict[str, str], count: int) -> list[RelayProcess]:
    return [
        start_relay(tmp_path / f"instance-{n}", "--mode", "sandbox", env=env) for n in range(count)
    ]


def count_rows(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.encode()).fetchone()
        assert row is not None
        return int(row[0])


async def drain(client: httpx.AsyncClient, base_url: str, till: dict[str, Any]) -> list[Any]:
    seen: list[Any] = []
    while True:
        response = await client.get(
            base_url + "/v1/events", params={"limit": 500}, headers=bearer(till)
        )
        assert response.status_code == 200, response.text
        events = response.json()["events"]
        if not events:
            return seen
        for event in events:
            ack = await client.post(f"{base_url}/v1/events/{event['id']}/ack", headers=bearer(till))
            assert ack.status_code == 200
        seen.extend(events)


@pytest.mark.parametrize("instances", [2, 3])
async def test_instances_share_dedupe_conflicts_claims_and_wake_ups(
    tmp_path: Path, postgres_cluster: PostgresCluster, instances: int
) -> None:
    url = postgres_cluster.fresh_schema()
    with relay_env(url) as env:
        relays = start_instances(tmp_path, env, instances)
        try:
            shop = await asyncio.to_thread(cli_enrol, tmp_path / "relay.db", "shop", "add", "S")
            async with httpx.AsyncClient(timeout=30) as client:
                # The same callback through every instance is stored once.
                path, body = attempt_path(shop), callback_body()
                for relay in relays:
                    response = await client.post(relay.base_url + path, content=body)
                    assert response.status_code == 200
                # Another body for that attempt, on another instance, is flagged.
                other = await client.post(relays[-1].base_url + path, content=callback_body())
                assert other.status_code == 200
                assert count_rows(url, "SELECT COUNT(*) FROM events") == 2
                flagged = "SELECT COUNT(*) FROM events WHERE flags = 'conflicting_body'"
                assert count_rows(url, flagged) == 1
                first = await drain(client, relays[0].base_url, shop)
                assert [e["flags"] for e in first] == [[], ["conflicting_body"]]

                # A till parked on instance 0 is woken by a commit on the last instance.
                poll = asyncio.create_task(
                    client.get(
                        relays[0].base_url + "/v1/events",
                        params={"wait": 25},
                        headers=bearer(shop),
                    )
                )
                await asyncio.sleep(0.3)
                woke_path = attempt_path(shop)
                posted = await client.post(relays[-1].base_url + woke_path, content=body)
                assert posted.status_code == 200
                events = (await poll).json()["events"]
                assert [e["attempt_ref"] for e in events] == [woke_path.split("/")[5]]

                # Every instance claiming for one till at once never hands out one event twice.
                for _ in range(60):
                    sent = await client.post(
                        relays[0].base_url + attempt_path(shop), content=callback_body()
                    )
                    assert sent.status_code == 200
                claims = await asyncio.gather(
                    *(
                        client.get(
                            relay.base_url + "/v1/events",
                            params={"limit": 7},
                            headers=bearer(shop),
                        )
                        for relay in relays * 6
                    )
                )
                handed = [e["id"] for c in claims for e in c.json()["events"]]
                assert len(handed) == len(set(handed))
                # The woken event is in flight (not acknowledged), so not handed out again.
                assert len(handed) == 60
        finally:
            for relay in relays:
                relay.server.stop()


@pytest.mark.slow
async def test_sigkill_one_of_two_instances_loses_no_acknowledged_callback(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    seed = int(os.environ.get("RELAY_CRASH_SEED", random.randrange(1 << 32)))
    print(f"instance crash seed: {seed} (rerun with RELAY_CRASH_SEED={seed})")
    rng = random.Random(seed)
    url = postgres_cluster.fresh_schema()
    with relay_env(url) as env:
        victim, survivor = start_instances(tmp_path, env, 2)
        try:
            db = tmp_path / "relay.db"
            first = await asyncio.to_thread(cli_enrol, db, "shop", "add", "Crash shop")
            tills = [first] + [
                await asyncio.to_thread(cli_enrol, db, "till", "add", first["shop_id"])
                for _ in range(2)
            ]
            acknowledged: dict[str, set[str]] = {t["till_id"]: set() for t in tills}
            stop = asyncio.Event()

            async def sender(client: httpx.AsyncClient, n: int) -> None:
                while not stop.is_set():
                    till = tills[n % len(tills)]
                    relay = victim if rng.random() < 0.5 else survivor
                    path = attempt_path(till)
                    try:
                        response = await client.post(relay.base_url + path, content=callback_body())
                    except httpx.TransportError:
                        await asyncio.sleep(0.005)
                        continue
                    if response.status_code == 200:
                        acknowledged[till["till_id"]].add(path.split("/")[5])
                    else:
                        assert response.status_code == 503, response.text

            def total() -> int:
                return sum(len(v) for v in acknowledged.values())

            limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
            async with httpx.AsyncClient(limits=limits, timeout=10) as client:
                senders = [asyncio.create_task(sender(client, n)) for n in range(9)]
                for _ in range(4):
                    floor = total() + 10
                    for _ in range(2000):
                        if total() >= floor:
                            break
                        await asyncio.sleep(0.01)
                    assert total() >= floor, "no progress after a restart"
                    await asyncio.sleep(rng.uniform(0.0, 0.3))
                    victim.server.kill()
                    await asyncio.to_thread(victim.server.start)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.gather(*senders)
                delivered = {t["till_id"]: await drain(client, survivor.base_url, t) for t in tills}
        finally:
            victim.server.stop()
            survivor.server.stop()
    print(f"{total()} acknowledged callbacks over {len(tills)} tills")
    assert total() >= 40
    for till_id, refs in acknowledged.items():
        got = [e["attempt_ref"] for e in delivered[till_id]]
        assert refs, f"till {till_id} got no callbacks at all"
        assert refs <= set(got), f"till {till_id} lost {len(refs - set(got))} callbacks"
        assert len(got) == len(set(got))
    assert count_rows(url, "SELECT COUNT(*) FROM events WHERE state <> 'acked'") == 0
