"""The PostgreSQL store's batched append (one batch holding repeats, second bodies and security
events gets the outcomes that one append at a time would), its writer thread (batches, closing
with appends queued, a connection the server ended) and its batched wake-ups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from callback_relay.postgres_store import (
    _INSERT_EVENTS,
    WRITER_NAME,
    PostgresStore,
    _append_pipelined,
    _columns,
)
from callback_relay.store import AppendResult, NewEvent, StoreUnavailable
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


async def in_one_batch(store: PostgresStore, events: list[NewEvent]) -> list[object]:
    """`events` as one batch, on a connection like the store's writer's."""

    def run() -> list[object]:
        with store._connect_writer() as conn:
            return list(_append_pipelined(conn, events))

    return await asyncio.to_thread(run)


def count_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0]) if row else 0


async def test_one_batch_gets_the_outcomes_of_appends_one_at_a_time(store: PostgresStore) -> None:
    (earlier,) = await in_one_batch(store, [callback("r3", b"x")])
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
    results = await in_one_batch(store, batch)
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


def test_the_conflict_check_stays_an_index_look_up_as_the_table_grows(
    store: PostgresStore,
) -> None:
    # The batch insert prepared on the writer's kind of connection while `events` is empty and
    # run with batches of 16 past PostgreSQL's five custom plans (after which it may keep a
    # generic one), then explained once the table has grown: a generic plan kept from the
    # empty table reads every row (a seq scan) for each batch's conflict check.
    with store._connect_writer() as conn:
        # Bound by the client: EXECUTE's own parameters carry no types to the server.
        cur = psycopg.ClientCursor(conn)
        cur.execute(
            "PREPARE grown (text, text, text, text[], text[], text[], text[], text[], text[], "
            "bigint[], bytea[]) AS " + _numbered(_INSERT_EVENTS)
        )
        for n in range(8):
            early = [callback(f"early{n}-{k}", b"x") for k in range(16)]
            cur.execute(_EXECUTE_GROWN, _columns(early))
        for n in range(20):
            _append_pipelined(conn, [callback(f"r{n}-{k}", b"x") for k in range(100)])
        cur.execute("BEGIN")
        cur.execute("EXPLAIN " + _EXECUTE_GROWN, _columns([callback("late", b"x")]))
        plan = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("ROLLBACK")
    assert "Index Only Scan using events_dedupe" in plan, plan
    assert "Seq Scan on events" not in plan, plan


async def test_pooled_connections_plan_for_the_table_as_it_is_too(store: PostgresStore) -> None:
    async with store._conn() as conn:
        shown = await conn.execute("SHOW plan_cache_mode")
        assert await shown.fetchone() == ("force_custom_plan",)


_EXECUTE_GROWN = "EXECUTE grown (" + ", ".join(["%s"] * 11) + ")"


def _numbered(statement: str) -> str:
    """`statement` with psycopg's placeholders as PostgreSQL's own $1, $2, ..."""
    parts = statement.replace("%b", "%s").split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


async def test_appends_queued_together_share_one_commit(store: PostgresStore) -> None:
    before = store.commits
    # Queued from one pass of the event loop: the writer finds them all waiting.
    results = await asyncio.gather(*(store.append(callback(f"q{n}", b"x")) for n in range(50)))
    assert {r.outcome for r in results} == {AppendOutcome.STORED}
    assert len({r.event_id for r in results}) == 50
    assert store.committed_writes - before >= 50
    assert store.commits - before < 50
    assert count_events(store._url) == 50


async def test_close_commits_what_was_queued_and_then_refuses_appends(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.fresh_schema()
    store = PostgresStore(url)
    await store.open()
    appends = [asyncio.ensure_future(store.append(callback(f"c{n}", b"x"))) for n in range(10)]
    await asyncio.sleep(0)  # every append is queued before the close
    await store.close()
    results = await asyncio.gather(*appends)
    assert len({r.event_id for r in results}) == 10
    assert count_events(url) == 10
    with pytest.raises(StoreUnavailable, match="not open"):
        await store.append(callback("late", b"x"))
    assert count_events(url) == 10


async def test_a_writer_connection_the_server_ended_is_replaced_without_a_refusal(
    store: PostgresStore,
) -> None:
    first = await store.append(callback("before", b"x"))
    with psycopg.connect(store._url, autocommit=True) as admin:
        writer = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
        pids = [row[0] for row in admin.execute(writer, (WRITER_NAME,)).fetchall()]
        assert len(pids) == 1
        admin.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        # The session is gone before the next append, so that append meets the dead connection.
        while admin.execute(writer, (WRITER_NAME,)).fetchall():
            await asyncio.sleep(0.01)
    again = await store.append(callback("after", b"x"))
    assert (first.outcome, again.outcome) == (AppendOutcome.STORED, AppendOutcome.STORED)
    assert count_events(store._url) == 2


async def test_with_no_database_to_reach_a_batch_is_refused_whole_and_the_writer_lives_on(
    postgres_cluster: PostgresCluster, caplog: pytest.LogCaptureFixture
) -> None:
    # A database of its own, so refusing connections to it touches no other test.
    name = f"gone_{uuid.uuid4().hex[:12]}"
    admin_url = postgres_cluster.url()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    store = PostgresStore(url)
    await store.open()
    try:
        assert (await store.append(callback("before", b"x"))).outcome is AppendOutcome.STORED
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            while admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchall():
                await asyncio.sleep(0.01)
        caplog.clear()
        outcomes = await asyncio.gather(
            *(store.append(callback(f"lost{n}", b"x")) for n in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert {str(o) for o in outcomes} == {"the relay store cannot write"}
        # One failure logged per batch that met no database, not one per append.
        failures = [r for r in caplog.records if r.getMessage().startswith("store append failed")]
        assert 1 <= len(failures) < 20
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        # The writer lives on: the next append connects again and is stored; the refused
        # ones were not.
        assert (await store.append(callback("after", b"x"))).outcome is AppendOutcome.STORED
        with psycopg.connect(url) as conn:
            refs = conn.execute("SELECT attempt_ref FROM events ORDER BY id").fetchall()
        assert refs == [("before",), ("after",)]
    finally:
        await store.close()
