"""The till's audit checkpoint at the relay: after each acknowledged feed batch the relay client
posts the chain's head (`POST /v1/audit/checkpoint`), and "verify chain" compares the log with
the relay's copy (`GET`), so a tail cut off on the till, with its head record put back, shows.

The till engine, its SQLite store, the simulator and the relay are real processes and files.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from smartduka_tui.clock import SystemClock
from smartduka_tui.manager import ManagerService
from smartduka_tui.model import AttemptState, ProblemKind
from smartduka_tui.relay_client import CHAIN_PROBLEM, RelayClient
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store import Secret
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.store.records import ChainCheckpoint, ChainState
from smartduka_tui.store.store import database_path
from tests.conftest import unique_phone
from tests.integration.support import RelayHandle, eventually
from tests.integration.test_pay_e2e import direct_till

PIN = "2580"


async def _held_or_skip(client: RelayClient) -> ChainCheckpoint | None:
    """The relay's checkpoint; skip (saying why) against a relay built before the endpoint."""
    try:
        return await client.fetch_checkpoint()
    except ConnectionError as error:
        if "HTTP 404" in str(error):
            pytest.skip("this relay has no /v1/audit/checkpoint yet (branch relaypg)")
        raise


async def test_each_acknowledged_batch_checkpoints_the_head_and_verify_uses_it(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phone = unique_phone()
    await sim.set_phone_scenario(phone, callback_delay_s=200)
    async with till.engine() as engine:
        await ManagerPin.of(engine.store).set(Secret(PIN))
        client = RelayClient(engine, engine.store, engine.till, relay.url, SystemClock())
        try:
            assert await _held_or_skip(client) is None
            started = await engine.start_payment("CP1", 50, phone)
            await sim.advance_clock(201)
            assert await eventually(client.drain) == 1
            view = await engine.get(started.attempt_id)
            assert view.state is AttemptState.COMPLETED
            head = await engine.store.audit.head()
            held = await client.fetch_checkpoint()
            assert held is not None and held == client.checkpointed
            assert head is not None and held.seq <= head.seq

            manager = ManagerService.for_engine(engine, chain_checkpoint=client.fetch_checkpoint)
            assert (await manager.sign_in(Secret(PIN))).accepted
            intact = await manager.verify_chain()
            assert intact.intact
            assert f"It matches the relay's checkpoint of entry {held.seq}." in intact.message

            # Cut the tail off, as an attacker with the file would, and put the head back.
            with sqlite3.connect(database_path(till.data_dir)) as conn:
                conn.execute("DROP TRIGGER audit_log_no_delete")
                keep = held.seq - 2
                conn.execute("DELETE FROM audit_log WHERE id > ?", (keep,))
                (kept_hash,) = conn.execute(
                    "SELECT hash FROM audit_log WHERE id = ?", (keep,)
                ).fetchone()
                conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (keep, kept_hash))
            report = await engine.store.audit.verify_chain(await client.fetch_checkpoint())
            assert report.state is ChainState.TRUNCATED and report.first_broken_id == keep + 1
            cut = await manager.verify_chain()
            assert not cut.intact and "(truncated)" in cut.message
            assert "the tail was cut off" in cut.message

            # The next checkpoint is behind the relay's: a problem for the manager, once.
            client.checkpointed = None
            assert await client.post_checkpoint() is None
            assert await client.post_checkpoint() is None
        finally:
            await client.close()
    (problem,) = [p for p in await till.problems() if p.detail.get("pattern") == CHAIN_PROBLEM]
    assert problem.kind is ProblemKind.SUSPICIOUS_PATTERN
    assert "entries were removed" in problem.detail["reason"]


async def test_verify_says_when_the_relay_cannot_be_asked(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    async with till.engine() as engine:
        await ManagerPin.of(engine.store).set(Secret(PIN))
        # A relay URL nothing listens on: port 9 (discard) on loopback.
        client = RelayClient(engine, engine.store, engine.till, "http://127.0.0.1:9", SystemClock())
        try:
            manager = ManagerService.for_engine(engine, chain_checkpoint=client.fetch_checkpoint)
            assert (await manager.sign_in(Secret(PIN))).accepted
            verdict = await manager.verify_chain()
        finally:
            await client.close()
    assert verdict.intact
    assert "The relay's checkpoint could not be read (the relay could not be reached" in (
        verdict.message
    )
