"""A PostgreSQL database that turns read-only under a running relay: 503 and an honest /healthz.

The real server is made read-only the way an operator (or a failover to a standby) would:
`ALTER DATABASE ... SET default_transaction_read_only`, with the relay's sessions ended so its
pool reconnects into read-only sessions. Reads still work; no write can commit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from tests.relay.conftest import Harness, attempt_path, callback_body, relay_settings, running
from tests.relay.postgres import PostgresCluster

# The relay's pool may hand out a connection the server ended; each try discards one.
_RECONNECT_TRIES = 20


@pytest.fixture
def database(postgres_cluster: PostgresCluster) -> str:
    """A database of its own, so making it read-only touches no other test's schema."""
    name = f"ro_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


@pytest.fixture
async def pg_harness(
    tmp_path: Path, postgres_cluster: PostgresCluster, database: str
) -> AsyncIterator[Harness]:
    url = postgres_cluster.url().rsplit("/", 1)[0] + f"/{database}"
    async with running(relay_settings(tmp_path, database_url=url)) as harness:
        yield harness


def set_read_only(cluster: PostgresCluster, database: str, read_only: bool) -> None:
    change = "SET default_transaction_read_only = on" if read_only else "RESET ALL"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {database} {change}")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )


async def test_a_read_only_database_gets_503_never_2xx_and_healthz_says_so(
    pg_harness: Harness, postgres_cluster: PostgresCluster, database: str
) -> None:
    h = pg_harness
    shop = await h.shop()
    assert (await h.post(attempt_path(shop))).status_code == 200
    assert (await h.client().get("/healthz")).status_code == 200

    set_read_only(postgres_cluster, database, True)
    refused_path, refused_body = attempt_path(shop), callback_body()
    statuses = [(await h.post(attempt_path(shop))).status_code for _ in range(5)]
    statuses.append((await h.post(refused_path, refused_body)).status_code)
    assert set(statuses) == {503}
    health = await h.client().get("/healthz")
    assert (health.status_code, health.json()) == (503, {"status": "store unavailable"})
    # The feed cannot hand out (a claim is a write) and says so rather than failing.
    assert (await h.feed(shop)).status_code == 503
    # Reads still work, and nothing but the first callback was stored.
    assert await h.count("SELECT COUNT(*) FROM events") == 1

    set_read_only(postgres_cluster, database, False)
    for _ in range(_RECONNECT_TRIES):
        if (await h.client().get("/healthz")).status_code == 200:
            break
    else:
        pytest.fail("/healthz did not recover once the database was writable again")
    # Daraja retrying the refused callback later is stored once.
    assert (await h.post(refused_path, refused_body)).status_code == 200
    assert (await h.post(refused_path, refused_body)).status_code == 200
    assert await h.count("SELECT COUNT(*) FROM events") == 2
