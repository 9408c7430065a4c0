"""The SQLite store's group commit (callback_relay/sqlite_store.py): concurrent writes batched,
and one failing write does not spoil its batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from callback_relay.sqlite_store import SqliteStore
from callback_relay.store import NewEvent
from callback_relay.types import AppendOutcome, EventKind


async def test_group_commit_batches_concurrent_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:
        events = [
            NewEvent(EventKind.CALLBACK, "s1", "t1", f"ref{i}", 1, b"{}", f"sha{i}")
            for i in range(200)
        ]
        results = await asyncio.gather(*(store.append(e) for e in events))
        assert {r.outcome for r in results} == {AppendOutcome.STORED}
        assert len({r.event_id for r in results}) == 200
        # Far fewer commits than writes: rows that arrived during a commit shared the next one.
        assert store.committed_writes == 200
        assert store.commits < 20
    finally:
        await store.close()


async def test_one_failing_write_does_not_spoil_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    try:

        def broken(conn: object) -> None:
            raise ValueError("a bug in one write")

        good = [
            store.append(NewEvent(EventKind.CALLBACK, "s1", "t1", f"r{i}", 1, b"{}", f"h{i}"))
            for i in range(5)
        ]
        outcomes = await asyncio.gather(store._write(broken), *good, return_exceptions=True)
        assert isinstance(outcomes[0], ValueError)
        assert all(not isinstance(o, BaseException) for o in outcomes[1:])
        assert (await store.inbox_stats())[0].unacked == 5
    finally:
        await store.close()
