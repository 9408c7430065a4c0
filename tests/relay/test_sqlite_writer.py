"""The SQLite store's writer thread: batches, a failed COMMIT, and closing with writes queued."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callback_relay.sqlite_store import SqliteStore
from callback_relay.store import AppendResult, NewEvent, StoreUnavailable
from callback_relay.types import AppendOutcome, EventKind


def event(n: int) -> NewEvent:
    return NewEvent(EventKind.CALLBACK, "s1", "t1", f"ref{n}", 1, b"{}", f"sha{n}")


def rows(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql).fetchone()[0])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def hold_writer(store: SqliteStore) -> tuple[asyncio.Future[None], threading.Event]:
    """Keep the writer thread inside a batch of its own until the returned event is set, so
    what is queued meanwhile goes into the next batch together."""
    inside, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        inside.set()
        release.wait(10)

    held = asyncio.ensure_future(store._write(hold))
    assert await asyncio.to_thread(inside.wait, 10)
    return held, release


async def test_a_failed_commit_refuses_every_write_of_its_batch_and_stores_none(
    store: SqliteStore,
) -> None:
    held, release = await hold_writer(store)

    def orphan_till(conn: sqlite3.Connection) -> None:
        # A deferred foreign key is checked only at COMMIT: the statement succeeds and the
        # batch's COMMIT itself fails.
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(
            "INSERT INTO tills (till_id, shop_id, key_sha256, created_at)"
            " VALUES ('t9', 'no-such-shop', x'00', 1)"
        )

    before = store.commits
    writes = [
        *(asyncio.ensure_future(store.append(event(n))) for n in range(5)),
        asyncio.ensure_future(store._write(orphan_till)),
        *(asyncio.ensure_future(store.append(event(n))) for n in range(5, 10)),
    ]
    await asyncio.sleep(0)  # every write is queued behind the held batch
    release.set()
    await held
    outcomes = await asyncio.gather(*writes, return_exceptions=True)

    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert all(str(o) == "the relay store cannot write" for o in outcomes)
    assert store.commits == before + 1  # the held batch only
    assert rows(store.path, "SELECT COUNT(*) FROM events") == 0
    assert rows(store.path, "SELECT COUNT(*) FROM tills") == 0
    # The writer lives on: the next batch is a fresh transaction.
    assert (await store.append(event(0))).outcome is AppendOutcome.STORED
    assert rows(store.path, "SELECT COUNT(*) FROM events") == 1


async def test_writes_queued_during_a_commit_share_the_next_one(store: SqliteStore) -> None:
    held, release = await hold_writer(store)
    before = store.commits
    writes = [asyncio.ensure_future(store.append(event(n))) for n in range(50)]
    await asyncio.sleep(0)
    release.set()
    await held
    results = await asyncio.gather(*writes)
    assert {r.outcome for r in results} == {AppendOutcome.STORED}
    assert store.commits == before + 2  # the held batch, then all 50 together


async def test_a_batch_is_at_most_group_commit_max_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db", group_commit_max=8)
    await store.open()
    try:
        held, release = await hold_writer(store)
        before = store.commits
        writes = [asyncio.ensure_future(store.append(event(n))) for n in range(20)]
        await asyncio.sleep(0)
        release.set()
        await held
        await asyncio.gather(*writes)
        assert store.commits == before + 1 + 3  # 8 + 8 + 4
    finally:
        await store.close()


async def test_close_commits_what_was_queued_and_then_refuses_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    held, release = await hold_writer(store)
    writes = [asyncio.ensure_future(store.append(event(n))) for n in range(10)]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    release.set()
    await closing
    await held
    results: list[AppendResult] = await asyncio.gather(*writes)
    assert len({r.event_id for r in results}) == 10
    assert rows(store.path, "SELECT COUNT(*) FROM events") == 10
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.append(event(99))
