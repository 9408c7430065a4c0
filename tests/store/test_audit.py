"""The hash-chained audit log: every edit or deletion is found, and named by entry id."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import Actor, AttemptState, AuditAction
from smartduka_tui.store import KeyMissingError, Keyring, Secret, Store
from smartduka_tui.store.audit import GENESIS_HASH, entry_hash
from smartduka_tui.store.records import ChainState
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
                action=AuditAction.ATTEMPT_UPDATED,
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
    assert report.state is ChainState.TRUNCATED and report.first_broken_id == 7
    assert report.reason == (
        "this entry is missing: entries 7 to 8 are gone from the end of the log"
    )


async def test_rehashed_edit_without_the_key_is_named(store: Store, clock: ManualClock) -> None:
    """Someone who edits an entry and recomputes its hash (without the till's key) gets a hash
    that fails the MAC, and the entry after it no longer links either."""
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
    assert report.state is ChainState.EDITED and report.first_broken_id == 3
    assert report.reason == "its content does not match its hash"


async def _rewrite_from(store: Store, first: int, mac_key: bytes | None, kid: str | None) -> None:
    """Recompute every entry from `first` on, as an attacker would: each links to the one
    before, its detail changed, its hash made with `mac_key` (not the till's)."""
    rows = await store.db.fetchall("SELECT * FROM audit_log WHERE id >= ? ORDER BY id", (first,))
    before = await store.db.fetchone("SELECT hash FROM audit_log WHERE id = ?", (first - 1,))
    prev = GENESIS_HASH if before is None else before["hash"]
    for row in rows:
        detail = '{"n":0}'
        digest = entry_hash(
            row["id"],
            row["at"],
            row["shop_id"],
            row["actor"],
            row["action"],
            row["attempt_id"],
            detail,
            prev,
            mac_key,
        )
        await _raw(
            store,
            "UPDATE audit_log SET detail = ?, prev_hash = ?, hash = ?, kid = ? WHERE id = ?",
            (detail, prev, digest, kid, row["id"]),
        )
        prev = digest
    await _raw(store, "UPDATE audit_head SET last_hash = ?", (prev,))


@pytest.mark.parametrize("first", [1, 4])
async def test_a_chain_rewritten_with_another_key_is_called_rewritten(
    store: Store, clock: ManualClock, keyring: Keyring, first: int
) -> None:
    await _log(store, clock, 7)
    await _rewrite_from(store, first, b"k" * 32, keyring.active_kid)
    report = await store.audit.verify_chain()
    assert report.state is ChainState.REWRITTEN and report.first_broken_id == first
    whole = "the whole log" if first == 1 else "the log from this entry on"
    assert report.reason == (
        f"{whole} was rewritten by someone without this till's key: none of those entries "
        "carries the key's MAC"
    )
    assert report.entries == first - 1


async def test_a_truncated_tail_with_its_head_put_back_shows_against_the_checkpoint(
    store: Store, clock: ManualClock
) -> None:
    await _log(store, clock, 8)
    checkpoint = await store.audit.head()
    assert checkpoint is not None and checkpoint.seq == 8
    assert (await store.audit.verify_chain(checkpoint)).intact
    row = await store.db.fetchone("SELECT hash FROM audit_log WHERE id = 5")
    assert row is not None
    await _raw(store, "DELETE FROM audit_log WHERE id > 5")
    await _raw(store, "UPDATE audit_head SET last_id = 5, last_hash = ?", (row["hash"],))
    assert (await store.audit.verify_chain()).intact  # nothing on the till can tell
    report = await store.audit.verify_chain(checkpoint)
    assert report.state is ChainState.TRUNCATED and report.first_broken_id == 6
    assert report.reason == (
        "the log ends at entry 5, but the relay holds a checkpoint of entry 8: the tail was cut off"
    )


async def test_a_chain_rewritten_without_keys_shows_against_the_checkpoint(
    store: Store, clock: ManualClock
) -> None:
    """The downgrade: every entry recomputed as an unkeyed (pre-key) one passes the local
    walk, but not the relay's checkpoint of the keyed head."""
    await _log(store, clock, 6)
    checkpoint = await store.audit.head()
    assert checkpoint is not None
    await _rewrite_from(store, 1, None, None)
    local = await store.audit.verify_chain()
    assert local.intact and local.unkeyed == 6
    report = await store.audit.verify_chain(checkpoint)
    assert report.state is ChainState.REWRITTEN and report.first_broken_id == 6
    assert report.reason == "it differs from the relay's checkpoint of it: the log was rewritten"


async def test_unkeyed_entries_before_the_key_are_counted_and_a_keyed_chain_needs_the_key(
    tmp_path: Path, clock: ManualClock, keyring: Keyring
) -> None:
    path = tmp_path / "till.db"
    keyless = await Store.open(path, clock=clock)
    try:
        async with keyless.write() as tx:
            await keyless.audit.append(
                tx, actor=Actor.SYSTEM, action=AuditAction.KEYS_ROTATION_STARTED
            )
    finally:
        await keyless.close()
    keyed = await Store.open(path, clock=clock, keyring=keyring)
    try:
        async with keyed.write() as tx:
            await keyed.audit.append(
                tx, actor=Actor.SYSTEM, action=AuditAction.KEYS_ROTATION_FINISHED
            )
        report = await keyed.audit.verify_chain()
        assert report.intact and report.entries == 2 and report.unkeyed == 1
    finally:
        await keyed.close()
    keyless = await Store.open(path, clock=clock)
    try:
        with pytest.raises(KeyMissingError, match="the audit log is keyed"):
            async with keyless.write() as tx:
                await keyless.audit.append(
                    tx, actor=Actor.SYSTEM, action=AuditAction.KEYS_ROTATION_STARTED
                )
        count = await keyless.db.fetchone("SELECT count(*) AS n FROM audit_log")
        assert count is not None and count["n"] == 2
    finally:
        await keyless.close()


async def test_an_unkeyed_entry_after_keyed_ones_is_refused(
    store: Store, clock: ManualClock
) -> None:
    await _log(store, clock, 5)
    await _rewrite_from(store, 5, None, None)
    report = await store.audit.verify_chain()
    assert report.state is ChainState.EDITED and report.first_broken_id == 5
    assert report.reason == "it was written without the key after the chain was keyed"


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
                action=AuditAction.SHOP_UPDATED,
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
        await store.audit.append(tx, actor=Actor.MANAGER, action=AuditAction.KEYS_ROTATION_STARTED)
    assert [e.action for e in await store.audit.system_entries()] == ["keys.rotation_started"]
    assert all(e.action != "keys.rotation_started" for e in await store.audit.entries(shop_id))
