"""The PostgreSQL store's batched append (one batch holding repeats, second bodies and security
events gets the outcomes that one append at a time would) and its batched wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callback_relay.postgres_store import PostgresStore
from callback_relay.store import AppendResult, NewEvent
from callback_relay.types import AppendOutcome, EventKind
from tests.relay.postgres import PostgresCluster


def callback(ref: str, body: bytes) -> NewEvent:
    return NewEvent(EventKind.CALLBACK, "s1", "t1", ref, 1, body, f"sha-{body.decode()}")


def security(ref: str, detail: str) -> NewEvent:
    return NewEvent(EventKind.SECURITY, "s1", "t1", ref, 1, b"", "sha-x", detail=detail)


@pytest.fixture
async def store(postgres_cluster: PostgresCluster) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_cluster.fresh_schema())
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_one_batch_gets_the_outcomes_of_appends_one_at_a_time(store: PostgresStore) -> None:
    (earlier,) = await store._append_pipelined([callback("r3", b"x")])
    assert isinstance(earlier, AppendResult)
    batch = [
        callback("r1", b"x"),
        callback("r1", b"x"),  # the same body again, in the same batch
        callback("r1", b"y"),  # a second body for r1, in the same batch
        callback("r2", b"z"),
        callback("r3", b"x"),  # the same body as an earlier batch's
        security("r1", "a"),
        security("r1", "b"),  # security events are not compared
    ]
    results = await store._append_pipelined(batch)
    assert all(isinstance(r, AppendResult) for r in results)
    outcomes = [r.outcome for r in results if isinstance(r, AppendResult)]
    ids = [r.event_id for r in results if isinstance(r, AppendResult)]
    assert outcomes == [
        AppendOutcome.STORED,
        AppendOutcome.DUPLICATE,
        AppendOutcome.CONFLICTING,
        AppendOutcome.STORED,
        AppendOutcome.DUPLICATE,
        AppendOutcome.STORED,
        AppendOutcome.STORED,
    ]
    assert ids[1] == ids[0]
    assert ids[4] == earlier.event_id
    assert len({ids[0], ids[2], ids[3], ids[5], ids[6]}) == 5
    stats = await store.inbox_stats()
    assert [s.unacked for s in stats] == [6]  # r3, r1 twice, r2 and two security events


async def test_a_wake_up_for_more_tills_than_one_notify_holds_reaches_every_till(
    store: PostgresStore,
) -> None:
    heard: set[str] = set()
    everyone = {f"t{n:0{13 + n % 7}d}" for n in range(1500)}  # about 25 KB of till ids
    subscribed = asyncio.Event()

    def hear(till_id: str) -> None:
        heard.add(till_id)
        subscribed.set()

    store.subscribe(hear)
    # The listener connects in the background: announce until it hears something.
    while not subscribed.is_set():
        store._announce("t-probe")
        await asyncio.sleep(0.05)
    for till_id in everyone:
        store._announce(till_id)
    for _ in range(200):
        if everyone <= heard:
            break
        await asyncio.sleep(0.05)
    assert everyone - heard == set()
