"""The embedded store: SQLite in WAL mode with `synchronous=FULL`, one writer with group commit.

Every write is a small function run by one writer thread, which owns the file's only write
connection (the broker's tables are written through it too). Writes that arrive while a commit
is in flight queue up and go together in the next `BEGIN IMMEDIATE ... COMMIT`, so one fsync
serves a whole batch while each caller still awaits its own write's commit. The thread starts
its next batch the moment a commit ends, without a round trip through the event loop, and a
batch's callers are answered with one wake-up of the loop. Reads that need no atomicity
(registry look-ups, statistics, the broker's look-ups) use a second connection on its own
thread; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from callback_relay.platform import (
    SQLITE_SCHEMA,
    BrokerSql,
    BrokerTables,
    PlatformShop,
    bucket_after,
    clashing_prefix,
)
from callback_relay.store import (
    EVENT_COLUMNS,
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
Op = Callable[[sqlite3.Connection], Any]

SCHEMA_VERSION = 4
# Steps from the version before. 2 and 4 only added tables (4: the broker's push buckets and
# OAuth token beside its older tables), which the CREATE ... IF NOT EXISTS does.
_MIGRATIONS: dict[int, str] = {
    3: "ALTER TABLE tills ADD COLUMN key_revision INTEGER NOT NULL DEFAULT 0",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS shops (
    shop_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shop_secrets (
    shop_id TEXT NOT NULL REFERENCES shops(shop_id),
    kid TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    PRIMARY KEY (shop_id, kid)
);
CREATE TABLE IF NOT EXISTS tills (
    till_id TEXT PRIMARY KEY,
    shop_id TEXT NOT NULL REFERENCES shops(shop_id),
    key_sha256 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    shop_id TEXT NOT NULL,
    till_id TEXT NOT NULL,
    attempt_ref TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    body_sha256 TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    visible_at INTEGER NOT NULL,
    acked_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_feed ON events (till_id, state, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe
    ON events (shop_id, till_id, attempt_ref, kind, body_sha256, detail);
CREATE INDEX IF NOT EXISTS events_state ON events (state, acked_at);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    till_id TEXT PRIMARY KEY REFERENCES tills(till_id),
    shop_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    head TEXT NOT NULL,
    at INTEGER NOT NULL
);
"""

_PENDING = str(EventState.PENDING)
_ACKED = str(EventState.ACKED)
_CONFLICTING_BODY = str(EventFlag.CONFLICTING_BODY)


class _OpFailed(Exception):
    """One op of a batch failed on its own; the batch runs again with savepoints."""


@dataclass(slots=True)
class _Failed:
    error: BaseException


# Queued after the last write by `close()`: the writer commits what is before it, then stops.
_STOP = None
_Request = tuple[Op, "asyncio.Future[Any]"]


class SqliteStore(RelayStore):
    """`RelayStore` on one SQLite file: create it, `await open()`, `await close()` at the end."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        group_commit_max: int = 512,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._group_commit_max = group_commit_max
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="relay-reader")
        self._rconn: sqlite3.Connection | None = None
        # The writer thread owns the write connection: only it ever touches `_wconn`.
        self._wconn: sqlite3.Connection | None = None
        self._writer: threading.Thread | None = None
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self.commits = 0
        self.committed_writes = 0

    REGISTRY_VERSION = "SELECT value FROM meta WHERE key = 'registry_version'"
    BUMP_REGISTRY = (
        "INSERT INTO meta (key, value) VALUES ('registry_version', 1) "
        "ON CONFLICT (key) DO UPDATE SET value = value + 1"
    )

    def __repr__(self) -> str:
        return f"SqliteStore({self.path.name!r})"

    # Connections and lifecycle.

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _open_writer(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # It holds encrypted secrets and every callback: owner-only from the first byte. SQLite
        # gives the -wal and -shm files the database file's mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in (_SCHEMA + SQLITE_SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            # A new file has the tables of version 2 from the CREATEs above.
            current = 2 if row is None else int(row[0])
            if current < SCHEMA_VERSION:
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    if version in _MIGRATIONS:
                        conn.execute(_MIGRATIONS[version])
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (SCHEMA_VERSION,),
                )
            elif current > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise StoreVersionError(
                    f"{self.path.name} was written by a newer relay (schema {current}; "
                    f"this relay knows {SCHEMA_VERSION}); upgrade the relay"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        self._wconn = conn

    def _open_reader(self) -> None:
        self._rconn = self._connect()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._writer = threading.Thread(
            target=self._run_writer, args=(opened,), name="relay-writer", daemon=True
        )
        self._writer.start()
        try:
            await opened
            await loop.run_in_executor(self._read_thread, self._open_reader)
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open the relay database: {exc}") from None
        except BaseException:
            await self.close()
            raise
        self._accepting = True

    async def close(self) -> None:
        self._accepting = False
        if self._writer is not None:
            # The writer commits everything queued before the stop, then closes its connection.
            self._requests.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        loop = asyncio.get_running_loop()
        if self._rconn is not None:
            await loop.run_in_executor(self._read_thread, self._rconn.close)
            self._rconn = None
        self._read_thread.shutdown(wait=True)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Nothing to do: one process owns the file, and its own hub hears every commit."""

    def replayed(self, tills: set[str]) -> None:
        """Nothing to do: the relay's own long-polls find replayed events at their next claim."""

    def broker(self) -> SqliteBrokerTables:
        """The broker's tables, written through this store's one writer."""
        return SqliteBrokerTables(self)

    # The writer.

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Queue `op` for the writer thread; the answer comes after its batch has committed."""
        loop = self._loop
        if not self._accepting or loop is None:
            raise StoreUnavailable("the relay store is not open")
        future: asyncio.Future[T] = loop.create_future()
        self._requests.put((op, future))
        return await future

    def _run_writer(self, opened: asyncio.Future[None]) -> None:
        """The writer thread: open the connection, then commit batches until told to stop.

        It takes the first queued request (waiting for one), then whatever else is queued, up
        to `group_commit_max`: the requests that arrived during the last commit share the next
        one. The batch's callers are answered together, on the event loop, after its COMMIT.
        The thread never waits for the event loop, so a busy loop cannot hold up a commit.
        """
        loop = self._loop
        assert loop is not None
        try:
            self._open_writer()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle_opened, opened, exc)
            return
        loop.call_soon_threadsafe(settle_opened, opened, None)
        requests, most = self._requests, self._group_commit_max
        try:
            stopping = False
            while not stopping:
                first = requests.get()
                if first is _STOP:
                    break
                batch = [first]
                while len(batch) < most:
                    try:
                        item = requests.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    batch.append(item)
                answers: list[Any] | None
                try:
                    answers = self._commit([op for op, _ in batch])
                except Exception as exc:
                    # Whatever went wrong, the writer lives on: this batch is refused (the
                    # callers answer 503) and the next batch starts a fresh transaction.
                    log.error("store write failed, %d writes refused: %s", len(batch), exc)
                    answers = None
                else:
                    self.commits += 1
                    self.committed_writes += len(batch)
                loop.call_soon_threadsafe(_settle, batch, answers)
        finally:
            conn, self._wconn = self._wconn, None
            if conn is not None:
                conn.close()

    def _commit(self, ops: list[Op]) -> list[Any]:
        """Run a batch in one transaction.

        A constraint violation or a bug in one op must be that op's failure alone, but a
        savepoint around every op costs two statements each; so a batch first runs without
        them, and only when an op fails is it rolled back and run again with a savepoint per
        op. Any other database error (locked, full, I/O), or a failed COMMIT, fails the whole
        batch and stores none of it.
        """
        try:
            return self._run_batch(ops, isolate=False)
        except _OpFailed:
            return self._run_batch(ops, isolate=True)

    def _run_batch(self, ops: list[Op], *, isolate: bool) -> list[Any]:
        conn = self._wconn
        if conn is None:
            raise sqlite3.OperationalError("database closed")
        results: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                if isolate:
                    conn.execute("SAVEPOINT op")
                try:
                    results.append(op(conn))
                except Exception as exc:
                    if isinstance(exc, sqlite3.Error) and not isinstance(
                        exc, sqlite3.IntegrityError
                    ):
                        raise
                    if not isolate:
                        raise _OpFailed from exc
                    conn.execute("ROLLBACK TO op")
                    results.append(_Failed(exc))
                if isolate:
                    conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise StoreUnavailable("the relay store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_thread, fn, conn)
        except sqlite3.Error as exc:
            log.error("store read failed: %s", exc)
            raise StoreUnavailable("the relay store cannot read") from None

    async def read_steps(self, *steps: Step) -> list[list[Row]]:
        def fn(conn: sqlite3.Connection) -> list[list[Row]]:
            conn.execute("BEGIN")
            try:
                return [conn.execute(sql, params).fetchall() for sql, params in steps]
            finally:
                conn.execute("COMMIT")

        return await self._read(fn)

    async def write_steps(self, *steps: Step) -> list[Done]:
        def op(conn: sqlite3.Connection) -> list[Done]:
            return [_done(conn.execute(sql, params)) for sql, params in steps]

        return await self._write(op)

    # Inbox.

    async def append(self, event: NewEvent) -> AppendResult:
        detail = event.detail or ""
        conflict_check = event.kind is not EventKind.SECURITY

        def op(conn: sqlite3.Connection) -> AppendResult:
            # Plain strings, not enum members: `.value` is a Python-level property, and the
            # writer holds the GIL the event loop needs while it runs this.
            kind = str(event.kind)
            if event.cap is not None:
                (held,) = conn.execute(
                    "SELECT COUNT(*) FROM events WHERE till_id = ? AND shop_id = ? AND kind = ? "
                    "AND state != ?",
                    (event.till_id, event.shop_id, kind, _ACKED),
                ).fetchone()
                if held >= event.cap:
                    return AppendResult(0, AppendOutcome.CAPPED)
            # One statement in the common case: the unique index drops an exact repeat, and the
            # CASE flags a different body for an attempt that already has one.
            row = conn.execute(
                "INSERT INTO events (kind, shop_id, till_id, attempt_ref, received_at, body, "
                "body_sha256, flags, detail, state, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "CASE WHEN ? AND EXISTS (SELECT 1 FROM events WHERE shop_id = ? AND till_id = ? "
                "AND attempt_ref = ? AND kind = ?) THEN ? ELSE '' END, ?, ?, ?) "
                "ON CONFLICT DO NOTHING RETURNING id, flags",
                (
                    kind,
                    event.shop_id,
                    event.till_id,
                    event.attempt_ref,
                    event.received_at,
                    event.body,
                    event.body_sha256,
                    conflict_check,
                    event.shop_id,
                    event.till_id,
                    event.attempt_ref,
                    kind,
                    _CONFLICTING_BODY,
                    detail,
                    _PENDING,
                    event.received_at,
                ),
            ).fetchone()
            if row is not None:
                outcome = AppendOutcome.CONFLICTING if row[1] else AppendOutcome.STORED
                return AppendResult(row[0], outcome)
            (existing,) = conn.execute(
                "SELECT id FROM events WHERE shop_id = ? AND till_id = ? AND attempt_ref = ? "
                "AND kind = ? AND body_sha256 = ? AND detail = ?",
                (event.shop_id, event.till_id, event.attempt_ref, kind, event.body_sha256, detail),
            ).fetchone()
            return AppendResult(existing, AppendOutcome.DUPLICATE)

        return await self._write(op)

    async def claim(
        self,
        shop_id: str,
        till_id: str,
        now: int,
        visibility_ms: int,
        max_deliveries: int,
        limit: int,
    ) -> Claim:
        def op(conn: sqlite3.Connection) -> Claim:
            conn.execute(
                "UPDATE events SET state = ? WHERE till_id = ? AND shop_id = ? AND state = ? "
                "AND delivery_count >= ? AND visible_at <= ?",
                (
                    EventState.DEAD.value,
                    till_id,
                    shop_id,
                    EventState.PENDING.value,
                    max_deliveries,
                    now,
                ),
            )
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE till_id = ? AND shop_id = ? "  # noqa: S608 - columns only
                "AND state = ? AND visible_at <= ? ORDER BY id LIMIT ?",
                (till_id, shop_id, EventState.PENDING.value, now, limit),
            ).fetchall()
            if rows:
                conn.executemany(
                    "UPDATE events SET delivery_count = delivery_count + 1, visible_at = ? "
                    "WHERE id = ?",
                    [(now + visibility_ms, row[0]) for row in rows],
                )
            soonest = conn.execute(
                "SELECT MIN(visible_at) FROM events WHERE till_id = ? AND shop_id = ? "
                "AND state = ? AND visible_at > ?",
                (till_id, shop_id, EventState.PENDING.value, now),
            ).fetchone()[0]
            return Claim(tuple(stored_event(row, row[10] + 1) for row in rows), soonest)

        return await self._write(op)

    async def ack(self, shop_id: str, till_id: str, event_id: int, now: int) -> AckResult:
        def op(conn: sqlite3.Connection) -> AckResult:
            row = conn.execute(
                "SELECT state, received_at FROM events "
                "WHERE id = ? AND till_id = ? AND shop_id = ?",
                (event_id, till_id, shop_id),
            ).fetchone()
            if row is None:
                return AckResult(found=False)
            if row[0] == EventState.ACKED.value:
                return AckResult(found=True, already=True, received_at=row[1])
            conn.execute(
                "UPDATE events SET state = ?, acked_at = ? WHERE id = ?",
                (EventState.ACKED.value, now, event_id),
            )
            return AckResult(found=True, received_at=row[1])

        return await self._write(op)


class SqliteBrokerTables(BrokerTables):
    """`BrokerStore` through the SQLite store's own writer and reader (no second connection on
    the file): the one writer makes the prefix check and the bucket's spend atomic."""

    REFUSED = sqlite3.IntegrityError

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self._write_op = store._write

    @staticmethod
    def refusal(exc: Exception) -> str:
        return str(exc)

    async def set_shop(self, shop: PlatformShop) -> None:
        def op(conn: sqlite3.Connection) -> None:
            others = conn.execute(BrokerSql.OTHER_PREFIXES, (shop.shop_id,)).fetchall()
            clash = clashing_prefix(shop, [(str(a), str(b)) for a, b in others])
            if clash is not None:
                raise clash
            conn.execute(BrokerSql.SET_SHOP, BrokerSql.shop_params(shop))

        with self._refused_as_config_error():
            await self._write_op(op)

    async def take_push(self, shop: PlatformShop, now: int) -> float:
        def op(conn: sqlite3.Connection) -> float:
            row = conn.execute(BrokerSql.BUCKET, (shop.shop_id,)).fetchone()
            state = None if row is None else (float(row[0]), int(row[1]))
            (tokens, at), wait = bucket_after(state, shop.pushes_per_minute, now, take=True)
            conn.execute(
                "INSERT INTO broker_push_buckets (shop_id, tokens, at_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (shop_id) DO UPDATE SET tokens = excluded.tokens,"
                " at_ms = excluded.at_ms",
                (shop.shop_id, tokens, at),
            )
            return wait

        with self._refused_as_config_error():
            return await self._write_op(op)


def _done(cursor: sqlite3.Cursor) -> Done:
    return Done(cursor.rowcount, cursor.fetchall() if cursor.description else [])


def _settle(batch: list[_Request], answers: list[Any] | None) -> None:
    """On the event loop: answer every caller of a committed batch, or of a refused one
    (`answers` None: nothing of it was stored)."""
    for index, (_, future) in enumerate(batch):
        if future.done():  # its caller gave up waiting; what it wrote stands
            continue
        if answers is None:
            future.set_exception(StoreUnavailable("the relay store cannot write"))
            continue
        answer = answers[index]
        if isinstance(answer, _Failed):
            future.set_exception(answer.error)
        else:
            future.set_result(answer)
