"""The hash-chained audit log: every edit or deletion is found, and named by entry id."""

from __future__ import annotations

import itertools
import sqlite3

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.store import Actor, AttemptState, Secret, Store
from smartduka_tui.store.audit import GENESIS_HASH, entry_hash
from tests.store.canaries import new_canary
from tests.store.helpers import make_shop, new_attempt


async def _log(store: Store, clock: ManualClock, entries: int) -> str:
    shop_id, _ = await make_shop(store)
    async with store.write() as tx:
        while (await tx.fetchone("SELECT count(*) FROM audit_log"))[0] < entries:  # type: ignore[index]
            clock.advance(1)
            await store.audit.append(
                tx,
                actor=Actor.SYSTEM,
                action="test.tick",
                shop_id=shop_id,
                detail={"n": clock.monotonic()},
            )
    return shop_id


async def _raw(store: Store, statement: str, params: tuple[object, ...] = ()) -> None:
    """Change the file as someone with direct access would: triggers dropped first."""
    async with store.write() as tx:
        await tx.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        await tx.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        await tx.execute(statement, params)


async def test_chain_links_every_entry(store: Store, clock: ManualClock) -> None:
    shop_id = await _log(store, clock, 10)
    report = await store.audit.verify_chain()
    assert report.intact and report.entries == 10 and report.first_broken_id is None
    entries = sorted(await store.audit.entries(shop_id), key=lambda e: e.id)
    assert [e.id for e in entries] == list(range(1, 11))
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


async def test_entry_written_with_its_change_in_one_transaction(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
        result = await store.attempts.transition(
            tx,
            shop_id,
            attempt.id,
            {AttemptState.CREATED},
            AttemptState.PENDING,
            Actor.CASHIER,
            checkout_request_id="ws_CO_1",
        )
    entry = (await store.audit.entries(shop_id, attempt_id=attempt.id))[0]
    assert entry.action == "attempt.transition"
    assert entry.actor is Actor.CASHIER
    assert entry.detail["from"] == "CREATED" and entry.detail["to"] == "PENDING"
    assert entry.detail["fields"] == {"checkout_request_id": "ws_CO_1"}
    assert entry.at == result.attempt.updated_at


@pytest.mark.parametrize("target", [1, 4, 7])
async def test_edited_entry_is_named(store: Store, clock: ManualClock, target: int) -> None:
    await _log(store, clock, 8)
    await _raw(store, "UPDATE audit_log SET detail = '{\"n\":999}' WHERE id = ?", (target,))
    report = await store.audit.verify_chain()
    assert not report.intact
    assert report.first_broken_id == target
    assert report.reason == "its content does not match its hash"


@pytest.mark.parametrize("column", ["at", "actor", "action", "shop_id", "attempt_id"])
async def test_every_column_is_covered_by_the_hash(
    store: Store, clock: ManualClock, column: str
) -> None:
    await _log(store, clock, 5)
    value = {"at": 0, "actor": "manager", "action": "x", "shop_id": "other", "attempt_id": 42}
    await _raw(
        store,
        f"UPDATE audit_log SET {column} = ? WHERE id = 3",  # noqa: S608 - column from the list
        (value[column],),
    )
    assert (await store.audit.verify_chain()).first_broken_id == 3


@pytest.mark.parametrize("target", [1, 5])
async def test_deleted_entry_is_named(store: Store, clock: ManualClock, target: int) -> None:
    await _log(store, clock, 8)
    await _raw(store, "DELETE FROM audit_log WHERE id = ?", (target,))
    report = await store.audit.verify_chain()
    assert report.first_broken_id == target
    assert report.reason == "this entry is missing"


async def test_deleted_tail_is_named(store: Store, clock: ManualClock) -> None:
    await _log(store, clock, 8)
    await _raw(store, "DELETE FROM audit_log WHERE id >= 7")
    report = await store.audit.verify_chain()
    assert report.first_broken_id == 7 and report.reason == "this entry is missing"


async def test_rehashed_edit_breaks_the_next_link(store: Store, clock: ManualClock) -> None:
    """Someone who edits an entry and recomputes its hash still breaks the entry after it."""
    await _log(store, clock, 6)
    row = await store.db.fetchone("SELECT * FROM audit_log WHERE id = 3")
    assert row is not None
    forged_detail = '{"n":0}'
    forged_hash = entry_hash(
        3,
        row["at"],
        row["shop_id"],
        row["actor"],
        row["action"],
        row["attempt_id"],
        forged_detail,
        row["prev_hash"],
    )
    await _raw(
        store,
        "UPDATE audit_log SET detail = ?, hash = ? WHERE id = 3",
        (forged_detail, forged_hash),
    )
    report = await store.audit.verify_chain()
    assert report.first_broken_id == 4
    assert report.reason == "it does not link to the entry before it"


async def test_missing_head_is_reported(store: Store, clock: ManualClock) -> None:
    await _log(store, clock, 3)
    await _raw(store, "DELETE FROM audit_head")
    report = await store.audit.verify_chain()
    assert not report.intact and report.reason == "the chain's head record is missing"


async def test_log_refuses_update_and_delete(store: Store, clock: ManualClock) -> None:
    await _log(store, clock, 3)
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with store.write() as tx:
                await tx.execute(statement)
    assert (await store.audit.verify_chain()).intact


async def test_secret_in_a_detail_is_refused_and_nothing_written(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    before = await store.audit.verify_chain()
    with pytest.raises(TypeError, match="secret cannot be written to the audit log"):
        async with store.write() as tx:
            await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
            await store.audit.append(
                tx,
                actor=Actor.MANAGER,
                action="oops",
                shop_id=shop_id,
                detail={"passkey": Secret(new_canary())},
            )
    assert await store.audit.verify_chain() == before
    assert (await store.attempts.history(shop_id)).items == ()


async def test_entries_are_filtered_by_shop(store: Store, clock: ManualClock) -> None:
    shop_a = await _log(store, clock, 4)
    shop_b, _ = await make_shop(store)
    assert all(e.shop_id == shop_a for e in await store.audit.entries(shop_a))
    assert all(e.shop_id == shop_b for e in await store.audit.entries(shop_b))
    assert await store.audit.entries("no-such-shop") == []


async def test_system_entries_are_kept_apart_from_shops(store: Store, clock: ManualClock) -> None:
    shop_id = await _log(store, clock, 2)
    async with store.write() as tx:
        await store.audit.append(tx, actor=Actor.MANAGER, action="keys.rotation_started")
    assert [e.action for e in await store.audit.system_entries()] == ["keys.rotation_started"]
    assert all(e.action != "keys.rotation_started" for e in await store.audit.entries(shop_id))
