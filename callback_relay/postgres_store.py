"""The platform store: PostgreSQL, shared by several relay instances behind a load balancer.

Appends are group-committed by one writer thread per instance, which owns a blocking connection
of its own: appends that queue while a commit is in flight share the next transaction, so one
WAL flush serves a batch (`synchronous_commit` stays on: a 2xx means durable). A batch's BEGIN,
statements and COMMIT go out as one pipeline, one round trip, and the thread starts the next
batch the moment a commit ends; the event loop only queues an append and is woken once per batch
to answer its callers, so it spends no time driving the database's protocol. Other writes are
one short transaction each on a pooled connection. Feed claims take rows with `FOR UPDATE SKIP
LOCKED`, so two instances never hand out the same event at once. A commit wakes long-polling
tills on *other* instances through one batched `NOTIFY`, sent by the writer between batches at
most once per 10 ms and never inside an inserting transaction (a pending NOTIFY takes a global
lock at commit and would serialise every insert). Migrations are numbered and applied once
under an advisory lock, so instances starting together do not race.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from callback_relay.platform import (
    BrokerSql,
    BrokerTables,
    PlatformShop,
    bucket_after,
    clashing_prefix,
    postgres_sql,
)
from callback_relay.store import (
    AckResult,
    AppendResult,
    Claim,
    Done,
    NewEvent,
    RelayStore,
    Row,
    Step,
    StoreUnavailable,
    StoreVersionError,
    settle_opened,
    stored_event,
)
from callback_relay.types import (
    AppendOutcome,
    EventFlag,
    EventKind,
    EventState,
)

log = logging.getLogger("callback_relay.store")

T = TypeVar("T")
Cursor = psycopg.AsyncCursor[tuple[Any, ...]]
WriterCursor = psycopg.Cursor[tuple[Any, ...]]

CHANNEL = "relay_events"
WRITER_NAME = "smartduka-relay-writer"
# Any fixed number: the lock that serialises migrations between instances starting at once.
_MIGRATION_LOCK = 0x5D_2E_1A_7
_GROUP_COMMIT_MAX = 512
_NOTIFY_INTERVAL_S = 0.01
# Every statement planned for the events table as it is now (see `_configure`).
_PLAN_AS_THE_TABLE_IS = "SET plan_cache_mode = force_custom_plan"
# NOTIFY payloads stop at 8000 bytes.
_NOTIFY_PAYLOAD_MAX = 7000
_REPEATABLE_READ: Step = ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", ())

# Versioned migrations: never edit one that has shipped; append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
    CREATE TABLE registry_version (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        version BIGINT NOT NULL
    );
    INSERT INTO registry_version (version) VALUES (0);
    CREATE TABLE shops (
        shop_id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL
    );
    CREATE TABLE shop_secrets (
        shop_id TEXT NOT NULL REFERENCES shops(shop_id),
        kid TEXT NOT NULL,
        ciphertext BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        retired_at BIGINT,
        PRIMARY KEY (shop_id, kid)
    );
    CREATE TABLE tills (
        till_id TEXT PRIMARY KEY,
        shop_id TEXT NOT NULL REFERENCES shops(shop_id),
        key_sha256 BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        shop_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        attempt_ref TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        body BYTEA NOT NULL,
        body_sha256 TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        delivery_count INTEGER NOT NULL DEFAULT 0,
        visible_at BIGINT NOT NULL,
        acked_at BIGINT
    );
    CREATE INDEX events_feed ON events (till_id, state, id);
    CREATE UNIQUE INDEX events_dedupe
        ON events (shop_id, till_id, attempt_ref, kind, body_sha256, detail);
    CREATE INDEX events_state ON events (state, acked_at);
    CREATE TABLE audit_checkpoints (
        till_id TEXT PRIMARY KEY REFERENCES tills(till_id),
        shop_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        head TEXT NOT NULL,
        at BIGINT NOT NULL
    );
    """,
    # Per-till callback keys: 0 marks a till enrolled before them (it signs with the shop
    # secret until `till rekey`).
    "ALTER TABLE tills ADD COLUMN key_revision INTEGER NOT NULL DEFAULT 0;",
    # The broker's tables, shared by every instance: one push bucket per shop, one token.
    """
    CREATE TABLE platform_account (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        shortcode TEXT NOT NULL,
        daraja_url TEXT NOT NULL,
        consumer_key BYTEA NOT NULL,
        consumer_secret BYTEA NOT NULL,
        passkey BYTEA NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE platform_shops (
        shop_id TEXT PRIMARY KEY REFERENCES shops(shop_id),
        prefix TEXT NOT NULL,
        pushes_per_minute INTEGER NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE broker_pushes (
        checkout_request_id TEXT PRIMARY KEY,
        shop_id TEXT NOT NULL,
        till_id TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX broker_pushes_age ON broker_pushes (created_at);
    CREATE TABLE broker_push_buckets (
        shop_id TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        at_ms BIGINT NOT NULL
    );
    CREATE TABLE broker_tokens (
        cache_key TEXT PRIMARY KEY,
        ciphertext BYTEA NOT NULL,
        expires_in INTEGER NOT NULL,
        usable_until_ms BIGINT NOT NULL
    );
    """,
)


class _Signal(Enum):
    """What the writer thread's queue holds besides appends."""

    # Queued after the last append by `close()`: the writer commits what is before it, then stops.
    STOP = "stop"
    # A wake-up to send that no commit of this writer's asked for (a replay).
    WAKE = "wake"


_Request = tuple[NewEvent, "asyncio.Future[AppendResult]"] | _Signal


def _settle(
    batch: Sequence[tuple[NewEvent, asyncio.Future[AppendResult]]],
    results: Sequence[AppendResult | BaseException],
) -> None:
    """On the event loop: answer every caller of a batch (a caller gone meanwhile is skipped)."""
    for (_, future), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class PostgresStore(RelayStore):
    """`RelayStore` on a PostgreSQL database: create it, `await open()`, `await close()`."""

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._url = url
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribers: list[Callable[[str], None]] = []
        # Tills whose commits other instances have not heard of yet; any thread adds to it.
        self._to_notify: set[str] = set()
        self._notify_lock = threading.Lock()
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        # The writer thread owns this connection: only it ever touches `_wconn`.
        self._wconn: psycopg.Connection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self.commits = 0
        self.committed_writes = 0

    REGISTRY_VERSION = "SELECT version FROM registry_version"
    BUMP_REGISTRY = "UPDATE registry_version SET version = version + 1"

    def __repr__(self) -> str:
        # The URL may carry a password: never shown.
        return "PostgresStore()"

    async def open(self) -> None:
        self._pool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=10,
            configure=_configure,
        )
        loop = asyncio.get_running_loop()
        self._loop = loop
        try:
            await self._pool.open(wait=True, timeout=10)
            async with self._pool.connection() as conn:
                await self._migrate(conn)
            opened: asyncio.Future[None] = loop.create_future()
            self._writer = threading.Thread(
                target=self._run_writer, args=(opened,), name="relay-pg-writer", daemon=True
            )
            self._writer.start()
            await opened
        except (psycopg.Error, TimeoutError) as exc:
            await self.close()
            raise StoreUnavailable(
                f"cannot open the relay database: {type(exc).__name__}"
            ) from None
        self._accepting = True

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            await cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreVersionError(
                    f"the relay database was written by a newer relay (schema {current}; this "
                    f"relay knows {len(MIGRATIONS)}); upgrade the relay"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                await cur.execute(MIGRATIONS[version - 1].encode())
                await cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))

    async def close(self) -> None:
        self._accepting = False
        if self._writer is not None:
            if self._writer.is_alive():
                # The writer commits every append queued before the stop, then closes its
                # connection.
                self._requests.put(_Signal.STOP)
                await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # Cross-instance wake-ups.

    def broker(self) -> PostgresBrokerTables:
        """The broker's tables in this database: every instance shares them."""
        return PostgresBrokerTables(self)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call `callback(till_id)` when any instance commits an event for that till."""
        self._subscribers.append(callback)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="relay-pg-listen")

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for note in conn.notifies():
                        for till_id in note.payload.split(","):
                            for callback in self._subscribers:
                                callback(till_id)
            except psycopg.Error as exc:
                log.error("feed wake-up listener lost (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(1)

    def _announce(self, till_id: str) -> None:
        """Tell other instances about a commit for `till_id`, in the writer's next NOTIFY."""
        with self._notify_lock:
            self._to_notify.add(till_id)
        if threading.current_thread() is not self._writer:
            self._requests.put(_Signal.WAKE)

    # Connections.

    @contextlib.asynccontextmanager
    async def _conn(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("the relay store is not open")
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (
            psycopg.OperationalError,
            psycopg.InterfaceError,
            # A database (or a standby after failover) that reads but cannot write.
            psycopg.errors.ReadOnlySqlTransaction,
            TimeoutError,
        ) as exc:
            log.error("store operation failed: %s", type(exc).__name__)
            raise StoreUnavailable("the relay store cannot write") from None

    async def _tx(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        """Run `work` in one transaction; committed before this returns."""
        async with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            return await work(cur)

    async def read_steps(self, *steps: Step) -> list[list[Row]]:
        """Several steps read in one REPEATABLE READ snapshot (a registry load)."""
        first: tuple[Step, ...] = (_REPEATABLE_READ,) if len(steps) > 1 else ()
        done = await self.write_steps(*first, *steps)
        return [d.rows for d in done[len(first) :]]

    async def write_steps(self, *steps: Step) -> list[Done]:
        async def work(cur: Cursor) -> list[Done]:
            done: list[Done] = []
            for sql, params in steps:
                await cur.execute(postgres_sql(sql), params)
                rows = await cur.fetchall() if cur.description else []
                done.append(Done(cur.rowcount, rows))
            return done

        return await self._tx(work)

    # Inbox.

    async def append(self, event: NewEvent) -> AppendResult:
        """Queue `event` for the writer thread; the answer comes after its batch has committed."""
        loop, writer = self._loop, self._writer
        if not self._accepting or loop is None or writer is None:
            raise StoreUnavailable("the relay store is not open")
        if not writer.is_alive():
            # Never queue for a writer that is gone: nobody would answer.
            raise StoreUnavailable("the relay store cannot write")
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._requests.put((event, future))
        return await future

    # The writer thread.

    def _run_writer(self, opened: asyncio.Future[None]) -> None:
        """Connect, then commit batches until told to stop.

        It takes the first queued append (waiting for one), then whatever else is queued, up to
        `_GROUP_COMMIT_MAX`: the appends that arrived during the last commit share the next one.
        A batch's callers are answered together, with one wake-up of the event loop. Between
        batches, and when idle, it sends the wake-ups other instances are owed, at most one
        NOTIFY per `_NOTIFY_INTERVAL_S` however many batches committed meanwhile.
        """
        loop = self._loop
        assert loop is not None
        try:
            self._wconn = self._connect_writer()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle_opened, opened, exc)
            return
        loop.call_soon_threadsafe(settle_opened, opened, None)
        requests = self._requests
        notified_at = -_NOTIFY_INTERVAL_S
        stopping = False
        try:
            while not stopping:
                wait = None
                if self._to_notify:
                    wait = max(0.0, notified_at + _NOTIFY_INTERVAL_S - time.monotonic())
                try:
                    item = requests.get(timeout=wait)
                except queue.Empty:
                    item = _Signal.WAKE
                batch: list[tuple[NewEvent, asyncio.Future[AppendResult]]] = []
                while True:
                    if item is _Signal.STOP:
                        stopping = True
                        break
                    if not isinstance(item, _Signal):
                        batch.append(item)
                    if len(batch) >= _GROUP_COMMIT_MAX:
                        break
                    try:
                        item = requests.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit_batch(loop, batch)
                due = time.monotonic() >= notified_at + _NOTIFY_INTERVAL_S
                if self._to_notify and (due or stopping):
                    self._send_notifies()
                    notified_at = time.monotonic()
        finally:
            conn, self._wconn = self._wconn, None
            if conn is not None:
                conn.close()

    def _connect_writer(self) -> psycopg.Connection[Any]:
        # Autocommit: a batch's BEGIN and COMMIT are its own, inside its pipeline. Named, so an
        # operator can tell the writer's session in pg_stat_activity.
        conn = psycopg.connect(
            self._url, autocommit=True, connect_timeout=10, application_name=WRITER_NAME
        )
        # Only the batch's two statements are prepared, and PostgreSQL may then keep a generic
        # plan for each, saving a plan per batch: neither can pick a plan that reads the table
        # (see `_INSERT_EVENTS`). Anything else it runs is planned afresh every time.
        conn.prepare_threshold = None
        return conn

    def _writer_conn(self) -> psycopg.Connection[Any]:
        """The writer's connection, made again if the server ended the last one."""
        if self._wconn is None or self._wconn.closed:
            self._wconn = self._connect_writer()
        return self._wconn

    def _commit_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[NewEvent, asyncio.Future[AppendResult]]],
    ) -> None:
        events = [event for event, _ in batch]
        try:
            results = self._append_batch(events)
        except Exception as exc:
            # Whatever went wrong, the writer lives on: this batch is refused (its callers
            # answer 503) and the next one starts afresh.
            results = _refused(exc, len(events))
        stored = {
            event.till_id
            for event, result in zip(events, results, strict=True)
            if isinstance(result, AppendResult)
            and result.outcome in (AppendOutcome.STORED, AppendOutcome.CONFLICTING)
        }
        if stored:
            with self._notify_lock:
                self._to_notify |= stored
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(_settle, batch, results)

    def _append_batch(self, events: list[NewEvent]) -> list[AppendResult | BaseException]:
        try:
            results = self._run_batch(events)
        except Exception as exc:
            if self._connected():
                return self._one_by_one(events, exc)
            # The server ended the connection (a restart, a failover, an operator): the batch
            # once more on a new one. One whose COMMIT did land comes back as duplicates.
            try:
                results = self._run_batch(events)
            except Exception as again:
                if not self._connected():
                    # No database to talk to: the whole batch refused at once, not each of
                    # its appends after a connection attempt of its own.
                    return _refused(again, len(events))
                return self._one_by_one(events, again)
        self.commits += 1
        self.committed_writes += len(events)
        return results

    def _connected(self) -> bool:
        return self._wconn is not None and not self._wconn.closed

    def _one_by_one(
        self, events: list[NewEvent], failure: Exception
    ) -> list[AppendResult | BaseException]:
        """One bad append must fail alone: the failed batch again, one append at a time."""
        if len(events) == 1:
            return [_unavailable(failure)]
        results: list[AppendResult | BaseException] = []
        for done, event in enumerate(events):
            try:
                results.extend(self._run_batch([event]))
            except Exception as single:
                if not self._connected():
                    return results + _refused(single, len(events) - done)
                results.append(_unavailable(single))
        return results

    def _run_batch(self, events: list[NewEvent]) -> list[AppendResult | BaseException]:
        conn = self._writer_conn()
        try:
            if any(event.cap is not None for event in events):
                # A capped append reads a count before it decides: one statement at a time.
                with conn.transaction(), conn.cursor() as cur:
                    return [_append_in(cur, event) for event in events]
            return list(_append_pipelined(conn, events))
        except BaseException:
            if (
                not conn.closed
                and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            ):
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            raise

    def _send_notifies(self) -> None:
        """One NOTIFY per chunk of the tills announced since the last, each its own tiny
        transaction. (Long-polls on this instance are woken by its own hub at once; only other
        instances hear it this late.)"""
        with self._notify_lock:
            tills, self._to_notify = sorted(self._to_notify), set()
        try:
            conn = self._writer_conn()
            with conn.pipeline():
                for chunk in _notify_payloads(tills):
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, chunk))
        except Exception as exc:
            # Tills on other instances then wake at their poll's end: late, not lost.
            log.error("feed wake-up not sent (%s)", type(exc).__name__)

    async def claim(
        self,
        shop_id: str,
        till_id: str,
        now: int,
        visibility_ms: int,
        max_deliveries: int,
        limit: int,
    ) -> Claim:
        pending = EventState.PENDING.value

        async def work(cur: Cursor) -> Claim:
            await cur.execute(
                "UPDATE events SET state = %s WHERE till_id = %s AND shop_id = %s AND state = %s "
                "AND delivery_count >= %s AND visible_at <= %s",
                (EventState.DEAD.value, till_id, shop_id, pending, max_deliveries, now),
            )
            # SKIP LOCKED: rows another instance is handing out right now are left to it.
            await cur.execute(
                "UPDATE events SET delivery_count = delivery_count + 1, visible_at = %s "
                "WHERE id IN (SELECT id FROM events WHERE till_id = %s AND shop_id = %s "
                "AND state = %s AND visible_at <= %s AND delivery_count < %s ORDER BY id "
                "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, kind, shop_id, till_id, "
                "attempt_ref, received_at, body, body_sha256, flags, detail, delivery_count",
                (now + visibility_ms, till_id, shop_id, pending, now, max_deliveries, limit),
            )
            rows = await cur.fetchall()
            events = sorted((stored_event(r, r[10]) for r in rows), key=lambda e: e.event_id)
            await cur.execute(
                "SELECT MIN(visible_at) FROM events WHERE till_id = %s AND shop_id = %s "
                "AND state = %s AND visible_at > %s",
                (till_id, shop_id, pending, now),
            )
            row = await cur.fetchone()
            return Claim(tuple(events), None if row is None else row[0])

        return await self._tx(work)

    async def ack(self, shop_id: str, till_id: str, event_id: int, now: int) -> AckResult:
        async def work(cur: Cursor) -> AckResult:
            await cur.execute(
                "UPDATE events SET state = %s, acked_at = %s WHERE id = %s AND till_id = %s "
                "AND shop_id = %s AND state <> %s RETURNING received_at",
                (EventState.ACKED.value, now, event_id, till_id, shop_id, EventState.ACKED.value),
            )
            row = await cur.fetchone()
            if row is not None:
                return AckResult(found=True, received_at=row[0])
            await cur.execute(
                "SELECT received_at FROM events WHERE id = %s AND till_id = %s AND shop_id = %s",
                (event_id, till_id, shop_id),
            )
            row = await cur.fetchone()
            if row is None:
                return AckResult(found=False)
            return AckResult(found=True, already=True, received_at=row[0])

        return await self._tx(work)

    def replayed(self, tills: set[str]) -> None:
        """Wake the long-polls of these tills on every instance: their events are back."""
        for till in tills:
            self._announce(till)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every statement of a pooled connection planned for the tables as they are now. psycopg
    prepares a statement after a few runs, and PostgreSQL may then keep one generic plan: made
    while `events` was nearly empty, such a plan can read the whole table for each run and
    stays so as the table grows, until an autoanalyze happens to replace it. A custom plan
    costs a fraction of a millisecond per statement and keeps index look-ups."""
    await conn.execute(_PLAN_AS_THE_TABLE_IS)
    await conn.commit()


def _notify_payloads(tills: list[str]) -> list[str]:
    """The till ids joined by commas, in as few payloads under NOTIFY's limit as they fit."""
    payloads: list[str] = []
    current: list[str] = []
    size = 0
    for till in tills:
        if current and size + len(till) + 1 > _NOTIFY_PAYLOAD_MAX:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(till)
        size += len(till) + 1
    if current:
        payloads.append(",".join(current))
    return payloads


def _append_in(cur: WriterCursor, event: NewEvent) -> AppendResult:
    if event.cap is not None:
        # Serialise capped appends per till, so two instances cannot both take the last
        # place.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))",
            ("\x1f".join((event.shop_id, event.till_id, event.kind.value)),),
        )
        cur.execute(
            "SELECT COUNT(*) FROM events WHERE till_id = %s AND shop_id = %s "
            "AND kind = %s AND state <> %s",
            (event.till_id, event.shop_id, event.kind.value, EventState.ACKED.value),
        )
        held = cur.fetchone()
        if held is not None and held[0] >= event.cap:
            return AppendResult(0, AppendOutcome.CAPPED)
    if event.kind is not EventKind.SECURITY:
        # Two instances may take different bodies for one attempt at the same moment;
        # the lock (per attempt, released at commit) makes the second see the first.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            ("\x1f".join(_attempt_key(event)),),
        )
    cur.execute(_INSERT_EVENT, _insert_params(event))
    return _inserted_or_existing(cur.connection, cur, event)


def _append_pipelined(
    conn: psycopg.Connection[Any], events: list[NewEvent]
) -> list[AppendResult | BaseException]:
    """The batch in one transaction of a few statements, BEGIN to COMMIT sent as one pipeline:
    one round trip. One statement takes every attempt's lock (in one order for every instance,
    so two batches never wait on each other in a ring), then one multi-row INSERT per round
    stores the batch. Its statement text is the same for any batch size, so it is prepared once
    per connection. Each INSERT starts after the locks are held, so it sees what they waited
    for; a round holds each attempt at most once, and a later round (a second body for an
    attempt in the same batch) sees the earlier one, as separate statements would. `conn` must
    be in autocommit mode (the pipeline holds its own BEGIN and COMMIT)."""
    rounds: list[list[int]] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for index, event in enumerate(events):
        key = _attempt_key(event)
        depth = seen.get(key, 0)
        seen[key] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(index)
    locks = ["\x1f".join(_attempt_key(e)) for e in events if e.kind is not EventKind.SECURITY]
    inserts: list[tuple[list[int], WriterCursor]] = []
    with conn.pipeline():
        conn.execute("BEGIN")
        if locks:
            conn.execute(_LOCK_ATTEMPTS, (locks,), prepare=True)
        for members in rounds:
            cur = conn.cursor()
            cur.execute(_INSERT_EVENTS, _columns([events[i] for i in members]), prepare=True)
            inserts.append((members, cur))
        conn.execute("COMMIT")
    # Committed: what is left is reading the answers.
    results: dict[int, AppendResult | BaseException] = {}
    missing: list[int] = []
    for members, cur in inserts:
        stored = {(row[2], row[3], row[4], row[5], row[6], row[7]): row for row in cur.fetchall()}
        for index in members:
            row = stored.get(_dedupe_key(events[index]))
            if row is None:
                missing.append(index)
            else:
                outcome = AppendOutcome.CONFLICTING if row[1] else AppendOutcome.STORED
                results[index] = AppendResult(row[0], outcome)
    if missing:
        # The same body again: its row was there already (perhaps from this batch).
        found = conn.execute(_EXISTING_EVENTS, _key_columns([events[i] for i in missing]))
        existing = {tuple(row[1:]): row[0] for row in found.fetchall()}
        for index in missing:
            event_id = existing.get(_dedupe_key(events[index]))
            # Gone already (retention pruned it meanwhile): refused, so that Daraja retries.
            results[index] = (
                StoreUnavailable("the relay store cannot write")
                if event_id is None
                else AppendResult(event_id, AppendOutcome.DUPLICATE)
            )
    return [results[index] for index in range(len(events))]


def _attempt_key(event: NewEvent) -> tuple[str, str, str, str]:
    return (event.shop_id, event.till_id, event.attempt_ref, event.kind.value)


# A body for an attempt that already has another is stored flagged (security events are not
# compared); the same body again is a duplicate and inserts nothing.
_INSERT_EVENT = (
    "INSERT INTO events (kind, shop_id, till_id, attempt_ref, received_at, body, "
    "body_sha256, flags, detail, state, visible_at) VALUES (%s, %s, %s, %s, %s, %s, "
    "%s, CASE WHEN %s AND EXISTS (SELECT 1 FROM events WHERE shop_id = %s "
    "AND till_id = %s AND attempt_ref = %s AND kind = %s) THEN %s ELSE '' END, "
    "%s, %s, %s) ON CONFLICT DO NOTHING RETURNING id, flags"
)


def _insert_params(event: NewEvent) -> tuple[Any, ...]:
    return (
        event.kind.value,
        event.shop_id,
        event.till_id,
        event.attempt_ref,
        event.received_at,
        event.body,
        event.body_sha256,
        event.kind is not EventKind.SECURITY,
        *_attempt_key(event),
        EventFlag.CONFLICTING_BODY.value,
        event.detail or "",
        EventState.PENDING.value,
        event.received_at,
    )


def _inserted_or_existing(
    conn: psycopg.Connection[Any], cur: WriterCursor, event: NewEvent
) -> AppendResult:
    """The outcome of `_INSERT_EVENT` on `cur`: stored (flagged or not), or the duplicate's id."""
    row = cur.fetchone()
    if row is not None:
        outcome = AppendOutcome.CONFLICTING if row[1] else AppendOutcome.STORED
        return AppendResult(row[0], outcome)
    found = conn.execute(
        "SELECT id FROM events WHERE shop_id = %s AND till_id = %s AND attempt_ref = %s "
        "AND kind = %s AND body_sha256 = %s AND detail = %s",
        (*_attempt_key(event), event.body_sha256, event.detail or ""),
    )
    existing = found.fetchone()
    assert existing is not None
    return AppendResult(existing[0], AppendOutcome.DUPLICATE)


# Every attempt lock of a batch in one statement, taken in hash order (the order of every
# instance). PostgreSQL evaluates a volatile function in the select list after the sort.
_LOCK_ATTEMPTS = (
    "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(k, 0) AS h "
    "FROM unnest(%b::text[]) AS k) AS locks ORDER BY h"
)

# `_INSERT_EVENT` for many rows at once, from one array per column (sent binary: as text, every
# body would be hex-escaped by the client and parsed back by the server). RETURNING names each
# stored row's dedupe key, since rows come back in no promised order and duplicates not at all.
# The conflict check's OFFSET 0 keeps PostgreSQL from turning it into one hashed subplan over the
# whole table, the plan it would pick (and, prepared, keep) while the table is nearly empty: it
# stays a look-up in events_dedupe per row, however the statement was planned.
_INSERT_EVENTS = (
    "INSERT INTO events (kind, shop_id, till_id, attempt_ref, received_at, body, body_sha256, "
    "flags, detail, state, visible_at) SELECT v.kind, v.shop_id, v.till_id, v.attempt_ref, "
    "v.received_at, v.body, v.body_sha256, CASE WHEN v.kind <> %s AND EXISTS (SELECT 1 FROM "
    "events e WHERE e.shop_id = v.shop_id AND e.till_id = v.till_id AND e.attempt_ref = "
    "v.attempt_ref AND e.kind = v.kind OFFSET 0) THEN %s ELSE '' END, v.detail, %s, "
    "v.received_at "
    "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::bigint[], %b::bytea[]) AS v(kind, shop_id, till_id, attempt_ref, body_sha256, detail, "
    "received_at, body) ON CONFLICT DO NOTHING "
    "RETURNING id, flags, shop_id, till_id, attempt_ref, kind, body_sha256, detail"
)

_EXISTING_EVENTS = (
    "SELECT e.id, e.shop_id, e.till_id, e.attempt_ref, e.kind, e.body_sha256, e.detail "
    "FROM events e JOIN unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::text[]) AS v(kind, shop_id, till_id, attempt_ref, body_sha256, detail) "
    "ON e.shop_id = v.shop_id AND e.till_id = v.till_id AND e.attempt_ref = v.attempt_ref "
    "AND e.kind = v.kind AND e.body_sha256 = v.body_sha256 AND e.detail = v.detail"
)


def _key_columns(events: list[NewEvent]) -> tuple[list[str], ...]:
    """The dedupe key's columns, one list each, in `_EXISTING_EVENTS`'s order."""
    return (
        [e.kind.value for e in events],
        [e.shop_id for e in events],
        [e.till_id for e in events],
        [e.attempt_ref for e in events],
        [e.body_sha256 for e in events],
        [e.detail or "" for e in events],
    )


def _columns(events: list[NewEvent]) -> tuple[Any, ...]:
    """`_INSERT_EVENTS`'s parameters: its constants, then one list per column."""
    return (
        EventKind.SECURITY.value,
        EventFlag.CONFLICTING_BODY.value,
        EventState.PENDING.value,
        *_key_columns(events),
        [e.received_at for e in events],
        [e.body for e in events],
    )


def _dedupe_key(event: NewEvent) -> tuple[str, str, str, str, str, str]:
    return (
        event.shop_id,
        event.till_id,
        event.attempt_ref,
        event.kind.value,
        event.body_sha256,
        event.detail or "",
    )


def _refused(exc: BaseException, count: int) -> list[AppendResult | BaseException]:
    """`count` appends refused for one failure, logged once."""
    first = _unavailable(exc)
    return [first, *(StoreUnavailable(str(first)) for _ in range(count - 1))]


def _unavailable(exc: BaseException) -> StoreUnavailable:
    if not isinstance(exc, StoreUnavailable):
        log.error("store append failed: %s", type(exc).__name__)
    return StoreUnavailable("the relay store cannot write")


class PostgresBrokerTables(BrokerTables):
    """`BrokerStore` in the shared database: a shop's push bucket is read and spent under its
    row lock, so instances behind one load balancer hold one limit between them."""

    REFUSED = psycopg.errors.IntegrityError

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(store)
        self._tx = store._tx

    async def set_shop(self, shop: PlatformShop) -> None:
        async def work(cur: Cursor) -> None:
            # One prefix change at a time, so two can never each miss the other's clash.
            await cur.execute("LOCK TABLE platform_shops IN SHARE ROW EXCLUSIVE MODE")
            await cur.execute(postgres_sql(BrokerSql.OTHER_PREFIXES), (shop.shop_id,))
            others = [(str(a), str(b)) for a, b in await cur.fetchall()]
            clash = clashing_prefix(shop, others)
            if clash is not None:
                raise clash
            await cur.execute(postgres_sql(BrokerSql.SET_SHOP), BrokerSql.shop_params(shop))

        with self._refused_as_config_error():
            await self._tx(work)

    async def take_push(self, shop: PlatformShop, now: int) -> float:
        async def work(cur: Cursor) -> float:
            # The row exists before it is locked, so the first pushes of two instances at
            # once queue on the same lock rather than both reading "no bucket yet".
            await cur.execute(
                "INSERT INTO broker_push_buckets (shop_id, tokens, at_ms) VALUES (%s, %s, %s)"
                " ON CONFLICT (shop_id) DO NOTHING",
                (shop.shop_id, float(shop.pushes_per_minute), now),
            )
            await cur.execute(postgres_sql(BrokerSql.BUCKET) + " FOR UPDATE", (shop.shop_id,))
            row = await cur.fetchone()
            assert row is not None
            state = (float(row[0]), int(row[1]))
            (tokens, at), wait = bucket_after(state, shop.pushes_per_minute, now, take=True)
            await cur.execute(
                "UPDATE broker_push_buckets SET tokens = %s, at_ms = %s WHERE shop_id = %s",
                (tokens, at, shop.shop_id),
            )
            return wait

        with self._refused_as_config_error():
            return await self._tx(work)
