"""Relay test harness: the app in-process (logic) and as real uvicorn processes (I/O, crashes)."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from callback_relay import cli
from callback_relay.app import Relay, make_app
from callback_relay.registry import Registry, open_box
from callback_relay.settings import RelaySettings
from smartduka_tui.clock import ManualClock
from smartduka_tui.mpesa.callback_path import sign, sign_new_attempt
from smartduka_tui.mpesa.enrolment import Enrolment
from tests.relay.postgres import PostgresCluster, find_pg_bin
from tests.support.daraja import PAYLOADS
from tests.support.processes import ServerProcess

SAFARICOM_IP = "196.201.214.200"
TEST_KEY = "5f" * 32
_counter = itertools.count(1)


def callback_body(result_code: int = 0, amount: int = 150) -> bytes:
    """A distinct, real-shape STK callback (unique CheckoutRequestID)."""
    name = "callback_success.json" if result_code == 0 else "callback_cancelled_1032.json"
    data: dict[str, Any] = copy.deepcopy(json.loads((PAYLOADS / name).read_text()))
    stk = data["Body"]["stkCallback"]
    stk["CheckoutRequestID"] = f"ws_CO_{uuid.uuid4().hex[:24]}"
    if result_code == 0:
        for item in stk["CallbackMetadata"]["Item"]:
            if item["Name"] == "Amount":
                item["Value"] = amount
    return json.dumps(data).encode()


def attempt_path(enrolment: Enrolment | dict[str, Any], attempt_ref: str | None = None) -> str:
    e = enrolment.as_json() if isinstance(enrolment, Enrolment) else enrolment
    if attempt_ref is None:
        signed = sign_new_attempt(
            e["callback_secret"], e["shop_id"], e["till_id"], e["callback_kid"]
        )
    else:
        signed = sign(
            e["callback_secret"], e["shop_id"], e["till_id"], attempt_ref, e["callback_kid"]
        )
    return signed.path()


def bearer(enrolment: Enrolment | dict[str, Any]) -> dict[str, str]:
    key = enrolment.till_key if isinstance(enrolment, Enrolment) else enrolment["till_key"]
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Harness:
    """One relay app in-process on a ManualClock, with helpers to enrol and call it."""

    relay: Relay
    app: Any
    clock: ManualClock
    registry: Registry
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def client(self, source: str = SAFARICOM_IP) -> httpx.AsyncClient:
        if source not in self.clients:
            transport = httpx.ASGITransport(app=self.app, client=(source, 40000))
            self.clients[source] = httpx.AsyncClient(
                transport=transport, base_url="http://relay.test"
            )
        return self.clients[source]

    async def shop(self, name: str = "Test shop") -> Enrolment:
        enrolment = await self.registry.add_shop(name)
        await self.relay.cache.refresh_if_changed()
        return enrolment

    async def till(self, shop_id: str) -> Enrolment:
        enrolment = await self.registry.add_till(shop_id)
        await self.relay.cache.refresh_if_changed()
        return enrolment

    async def post(
        self,
        path: str,
        body: bytes | None = None,
        *,
        source: str = SAFARICOM_IP,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = callback_body() if body is None else body
        return await self.client(source).post(path, content=content, headers=headers)

    async def feed(
        self, enrolment: Enrolment | dict[str, Any], wait: float = 0, **params: Any
    ) -> httpx.Response:
        return await self.client("10.9.8.7").get(
            "/v1/events", params={"wait": wait, **params}, headers=bearer(enrolment)
        )

    async def ack(self, enrolment: Enrolment | dict[str, Any], event_id: int) -> httpx.Response:
        return await self.client("10.9.8.7").post(
            f"/v1/events/{event_id}/ack", headers=bearer(enrolment)
        )

    async def drain(self, enrolment: Enrolment) -> list[dict[str, Any]]:
        """Read and acknowledge everything the till has, in order."""
        seen: list[dict[str, Any]] = []
        while True:
            response = await self.feed(enrolment)
            assert response.status_code == 200, response.text
            events = response.json()["events"]
            if not events:
                return seen
            for event in events:
                assert (await self.ack(enrolment, event["id"])).status_code == 200
            seen.extend(events)

    async def count(self, sql: str, *params: Any) -> int:
        """One number from the relay's database, whichever store it is (`?` placeholders)."""
        url = self.relay.settings.database_url
        if url is not None:
            import psycopg

            async with await psycopg.AsyncConnection.connect(url.get_secret_value()) as conn:
                cur = await conn.execute(sql.replace("?", "%s").encode(), params)
                row = await cur.fetchone()
                assert row is not None
                return int(row[0])
        import sqlite3

        with sqlite3.connect(self.relay.settings.db) as conn:
            return int(conn.execute(sql, params).fetchone()[0])


def relay_settings(tmp_path: Path, **overrides: Any) -> RelaySettings:
    base: dict[str, Any] = {
        "db": tmp_path / "relay.db",
        "mode": "production",
        "encryption_key": TEST_KEY,
        "feed_rate_burst": 1000,
        "feed_rate_per_s": 1000,
        "ack_rate_burst": 1000,
        "ack_rate_per_s": 1000,
    }
    base.update(overrides)
    return RelaySettings(**base)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server per test process; each test gets its own schema."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed (no pg_ctl/initdb): .ci/run installs it")
    cluster = PostgresCluster(bin_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The relay's contract holds on both stores; a test about SQLite itself narrows this."""
    kind: str = request.param
    return kind


@pytest.fixture
def store_overrides(store_kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if store_kind == "sqlite":
        return {}
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return {"database_url": cluster.fresh_schema()}


@contextlib.asynccontextmanager
async def running(settings: RelaySettings) -> AsyncIterator[Harness]:
    """One relay app on `settings`, its lifespan running, with a registry on its store."""
    clock = ManualClock()
    app = make_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        relay: Relay = app.state.relay
        box = await open_box(relay.store, settings.db, TEST_KEY, create=True)
        assert box is not None
        harness = Harness(relay, app, clock, Registry(relay.store, box, clock))
        try:
            yield harness
        finally:
            for client in harness.clients.values():
                await client.aclose()


@pytest.fixture
def make_harness(tmp_path: Path, store_overrides: dict[str, Any]) -> Any:
    """A factory: `async with make_harness(**settings) as h:` runs one app's lifespan."""

    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Harness]:
        return running(relay_settings(tmp_path, **store_overrides, **overrides))

    return factory


@pytest.fixture
async def harness(make_harness: Any) -> AsyncIterator[Harness]:
    async with make_harness() as h:
        yield h


def cli_enrol(db: Path, *args: str) -> dict[str, Any]:
    """Run an enrolling CLI command in-process and return its enrolment JSON."""
    out = db.parent / f"enrol-{next(_counter)}-{os.getpid()}.json"
    assert cli.main([*args, "--db", str(db), "--out", str(out), "--json"]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return data


@dataclass
class RelayProcess:
    server: ServerProcess
    db: Path

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def shop(self, name: str = "Process shop") -> dict[str, Any]:
        return cli_enrol(self.db, "shop", "add", name)

    def till(self, shop_id: str) -> dict[str, Any]:
        return cli_enrol(self.db, "till", "add", shop_id)


def start_relay(workdir: Path, *args: str, env: dict[str, str] | None = None) -> RelayProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "relay.db"
    server = ServerProcess(
        "callback_relay", workdir, ["--db", str(db), *args], env=env or {}
    ).start()
    return RelayProcess(server, db)


@pytest.fixture(scope="session")
def production_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A production-mode relay that allows only 127.0.0.1 and trusts 127.0.0.3 as a proxy;
    unacknowledged events come back after 1 s and dead-letter after 2 deliveries."""
    workdir = tmp_path_factory.mktemp("relay-production")
    relay = start_relay(
        workdir,
        "--mode",
        "production",
        "--allowlist",
        "127.0.0.1",
        "--trusted-proxies",
        "127.0.0.3",
        env={
            "SMARTDUKA_RELAY_METRICS_TOKEN": "metrics-token-for-tests",
            "SMARTDUKA_RELAY_METRICS_ALLOW": "127.0.0.1",
            "SMARTDUKA_RELAY_VISIBILITY_TIMEOUT_S": "1",
            "SMARTDUKA_RELAY_MAX_DELIVERIES": "2",
        },
    )
    try:
        yield relay
    finally:
        relay.server.stop()
