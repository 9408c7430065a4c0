"""The SQLite file: opening, migrating, and the one way to write (`async with db.write()`).

Two connections: a writer, used only inside `write()` under an asyncio lock with
`BEGIN IMMEDIATE` (so a transaction that reads and then writes never meets "database is
locked"), and a reader with `query_only`, which in WAL mode sees the last committed state and
never waits for the writer. SQLite errors are turned into `StoreError`s that say what to do.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, Protocol

import aiosqlite

from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.store.errors import (
    DatabaseError,
    StoreBusyError,
    StoreCorruptError,
    StoreDamagedError,
    StoreFullError,
    StoreIOError,
    StoreReadOnlyError,
    StoreTooNewError,
)
from smartduka_tui.store.migrations import APPLICATION_ID, LATEST_VERSION, MIGRATIONS, Migration
from smartduka_tui.store.records import to_ms

BUSY_TIMEOUT_MS = 10_000
Params = Sequence[Any] | Mapping[str, Any]

# Set while the current task is inside `write()`, to catch a nested write (a deadlock).
_in_write: contextvars.ContextVar[bool] = contextvars.ContextVar("_in_write", default=False)


class Reader(Protocol):
    """Something to read with: the database (committed state) or an open write transaction."""

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]: ...


def translate(path: Path, error: sqlite3.Error) -> DatabaseError | None:
    """The store error for an SQLite error about the file (full, read-only, damaged, busy,
    I/O), by its result code; None for errors in the SQL itself, which are bugs to surface."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL:
        return StoreFullError(path)
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return StoreReadOnlyError(path)
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreCorruptError(path)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreBusyError(path)
    if primary == sqlite3.SQLITE_CANTOPEN:
        return StoreReadOnlyError(path) if path.exists() else StoreIOError(path, "cannot open")
    if primary in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOLFS):
        return StoreIOError(path, str(error))
    return None


def _raise_translated(path: Path, error: sqlite3.Error) -> NoReturn:
    translated = translate(path, error)
    if translated is None:
        raise error
    raise translated from error


class _Guarded:
    """Runs statements on one connection, translating SQLite errors."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    # One thread hop per statement: aiosqlite's execute_fetchall runs and fetches in its thread
    # (a cursor would cost three hops: execute, fetch, close).
    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.Error as error:
            _raise_translated(self._path, error)


class WriteTx(_Guarded):
    """An open `BEGIN IMMEDIATE` transaction; valid only inside `async with db.write()`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, clock: Clock) -> None:
        super().__init__(conn, path)
        self.clock = clock

    def now_ms(self) -> int:
        return to_ms(self.clock.now())

    async def execute(self, sql: str, params: Params = ()) -> None:
        """Run one statement (to learn which rows changed, add RETURNING and use fetchall)."""
        await self.fetchall(sql, params)


class Database:
    """One till database file. Open with `await Database.open(path)`; close when done."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        clock: Clock,
        schema_version: int,
    ) -> None:
        self.path = path
        self.clock = clock
        self.schema_version = schema_version
        self._writer = writer
        self._reader = _Guarded(reader, path)
        self._reader_conn = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: str | Path, clock: Clock | None = None, *, upgrade_to: int = LATEST_VERSION
    ) -> Database:
        """Open (creating if needed) and migrate to `upgrade_to` (tests stop at older versions).

        Raises StoreTooNewError for a database from a newer SmartDuka, StoreReadOnlyError,
        StoreCorruptError or StoreFullError with a message saying what to do.
        """
        path = Path(path)
        clock = clock or SystemClock()
        _create_private(path)
        writer = await _connect(path)
        try:
            version = await _prepare_and_migrate(writer, path, clock, upgrade_to)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        try:
            await _configure_reader(reader, path)
        except BaseException:
            await reader.close()
            await writer.close()
            raise
        return cls(path, writer, reader, clock, version)

    async def close(self) -> None:
        async with self._write_lock:
            await self._reader_conn.close()
            await self._writer.close()

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await self._reader.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self._reader.fetchall(sql, params)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTx]:
        """One write transaction (`BEGIN IMMEDIATE`): commits when the block ends, rolls back
        if it raises. Everything that must change together goes in one block."""
        if _in_write.get():
            raise RuntimeError("write() is already open in this task; pass its tx along")
        token = _in_write.set(True)
        try:
            async with self._write_lock:
                tx = WriteTx(self._writer, self.path, self.clock)
                await tx.execute("BEGIN IMMEDIATE")
                try:
                    yield tx
                except BaseException:
                    await self._rollback()
                    raise
                try:
                    await tx.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise
        finally:
            _in_write.reset(token)

    async def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (a full disk, for one); then there is
        # no transaction left to roll back.
        if self._writer.in_transaction:
            try:
                await self._writer.execute("ROLLBACK")
            except sqlite3.Error as error:
                _raise_translated(self.path, error)


def _create_private(path: Path) -> None:
    """Create a new database file readable by this user only (it holds phone numbers and
    sealed credentials); SQLite gives its -wal and -shm files the same mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as error:
        if isinstance(error, PermissionError) or error.errno == errno.EROFS:
            raise StoreReadOnlyError(path) from None
        if error.errno == errno.ENOSPC:
            raise StoreFullError(path) from None
        raise StoreIOError(path, error.strerror or "cannot create the file") from None


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        _raise_translated(path, error)
    conn.row_factory = sqlite3.Row
    return conn


async def _pragma(conn: aiosqlite.Connection, path: Path, sql: str) -> Any:
    try:
        async with conn.execute(sql) as cursor:
            row = await cursor.fetchone()
    except sqlite3.Error as error:
        _raise_translated(path, error)
    return None if row is None else row[0]


async def _configure_reader(conn: aiosqlite.Connection, path: Path) -> None:
    await _pragma(conn, path, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await _pragma(conn, path, "PRAGMA foreign_keys = ON")
    await _pragma(conn, path, "PRAGMA query_only = ON")


async def _prepare_and_migrate(
    conn: aiosqlite.Connection, path: Path, clock: Clock, upgrade_to: int
) -> int:
    await _pragma(conn, path, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await _check_application_id(conn, path)
    # Before anything writes, so a damaged file is left exactly as it was found.
    await _quick_check(conn, path)
    mode = await _pragma(conn, path, "PRAGMA journal_mode = WAL")
    if str(mode).lower() != "wal":
        raise StoreIOError(path, f"the database refused WAL mode (journal mode is {mode})")
    await _pragma(conn, path, "PRAGMA synchronous = FULL")
    await _pragma(conn, path, "PRAGMA foreign_keys = ON")

    async with _immediate(conn, path, clock) as tx:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL,"
            " description TEXT NOT NULL) STRICT"
        )
        await tx.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        current = await _current_version(tx)
        if current > LATEST_VERSION:
            raise StoreTooNewError(path, current, LATEST_VERSION)

    for migration in MIGRATIONS:
        if current < migration.version <= upgrade_to:
            current = await _apply(conn, path, clock, migration)
    return current


async def _quick_check(conn: aiosqlite.Connection, path: Path) -> None:
    """StoreDamagedError when SQLite's quick_check finds damage: a till must not take money
    on a file whose pages are broken (it reads every page once; bench/store.py times it)."""
    try:
        async with conn.execute("PRAGMA quick_check(1)") as cursor:
            row = await cursor.fetchone()
    except sqlite3.DatabaseError as error:
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_CORRUPT:
            raise StoreDamagedError(path, str(error)) from None
        _raise_translated(path, error)
    finding = "no answer" if row is None else str(row[0])
    if finding != "ok":
        raise StoreDamagedError(path, finding)


async def _check_application_id(conn: aiosqlite.Connection, path: Path) -> None:
    """Refuse a SQLite file that belongs to something else (the relay's database, say)."""
    app_id = await _pragma(conn, path, "PRAGMA application_id")
    if app_id == APPLICATION_ID:
        return
    if app_id != 0:
        raise StoreCorruptError(path)
    tables = await _pragma(
        conn, path, "SELECT count(*) FROM sqlite_schema WHERE name != 'schema_version'"
    )
    if tables:
        raise StoreCorruptError(path)


async def _current_version(tx: WriteTx) -> int:
    row = await tx.fetchone("SELECT max(version) FROM schema_version")
    return int(row[0]) if row is not None and row[0] is not None else 0


@asynccontextmanager
async def _immediate(
    conn: aiosqlite.Connection, path: Path, clock: Clock
) -> AsyncIterator[WriteTx]:
    """A `BEGIN IMMEDIATE` transaction of opening time, before the database has its `write()`:
    committed when the block ends, rolled back if it raises."""
    tx = WriteTx(conn, path, clock)
    await tx.execute("BEGIN IMMEDIATE")
    try:
        yield tx
        await tx.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise


async def _apply(conn: aiosqlite.Connection, path: Path, clock: Clock, migration: Migration) -> int:
    async with _immediate(conn, path, clock) as tx:
        # Another process may have migrated while we waited for the lock.
        current = await _current_version(tx)
        if current >= migration.version:
            return current
        for statement in migration.statements:
            await tx.execute(statement)
        await tx.execute(
            "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
            (migration.version, tx.now_ms(), migration.description),
        )
    return migration.version
