"""The database file: migrations, refusals, durability under a full disk or a read-only file,
concurrent writers and the one-process-per-folder lock."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.model import Actor, AttemptState
from smartduka_tui.store import (
    DataDirLockedError,
    Keyring,
    Store,
    StoreCorruptError,
    StoreFullError,
    StoreReadOnlyError,
    StoreTooNewError,
    acquire_data_dir_lock,
)
from smartduka_tui.store.db import Database
from smartduka_tui.store.migrations import LATEST_VERSION, MIGRATIONS
from tests.store.helpers import make_shop, new_attempt

ROOT = Path(__file__).resolve().parents[2]


async def _schema(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetchall(
        "SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name"
    )
    return [(row["name"], " ".join(row["sql"].split())) for row in rows]


async def test_fresh_database_is_at_the_latest_version_with_durable_settings(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "till.db")
    try:
        assert db.schema_version == LATEST_VERSION
        rows = await db.fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]
        async with db.write() as tx:
            settings = {
                name: (await tx.fetchone(f"PRAGMA {name}"))[0]  # type: ignore[index]
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert settings == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 10000,
        }
    finally:
        await db.close()


@pytest.mark.parametrize("start", [0, *(m.version for m in MIGRATIONS[:-1])])
async def test_migrates_from_every_earlier_version(tmp_path: Path, start: int) -> None:
    reference = await Database.open(tmp_path / "reference.db")
    expected = await _schema(reference)
    await reference.close()

    path = tmp_path / "old.db"
    old = await Database.open(path, upgrade_to=start)
    assert old.schema_version == start
    if start >= 1:
        async with old.write() as tx:
            await tx.execute(
                "INSERT INTO shops VALUES ('kept', 'Kept', 'platform', NULL, NULL, 'KP', 1,"
                " 'pending', NULL, 1, 1)"
            )
    await old.close()

    upgraded = await Database.open(path)
    try:
        assert upgraded.schema_version == LATEST_VERSION
        assert await _schema(upgraded) == expected
        if start >= 1:
            assert await upgraded.fetchone("SELECT name FROM shops WHERE id = 'kept'")
    finally:
        await upgraded.close()


async def test_database_from_a_newer_version_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "till.db"
    db = await Database.open(path)
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO schema_version VALUES (?, 0, 'from the future')", (LATEST_VERSION + 4,)
        )
    await db.close()
    before = path.read_bytes()

    with pytest.raises(StoreTooNewError) as caught:
        await Database.open(path)
    message = str(caught.value)
    assert f"schema version {LATEST_VERSION + 4}" in message
    assert f"versions up to {LATEST_VERSION}" in message
    assert "Upgrade SmartDuka" in message
    assert path.read_bytes() == before


async def test_another_programs_database_and_junk_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "relay.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE inbox (id INTEGER PRIMARY KEY)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a SmartDuka till database"):
        await Database.open(other)
    assert other.read_bytes() == before

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 300)
    with pytest.raises(StoreCorruptError):
        await Database.open(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 300


async def test_failed_block_rolls_back_everything(store: Store, clock: ManualClock) -> None:
    shop_id, till_id = await make_shop(store)
    chain = await store.audit.verify_chain()
    with pytest.raises(ZeroDivisionError):
        async with store.write() as tx:
            await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
            _ = 1 / 0
    assert (await store.attempts.history(shop_id)).items == ()
    assert await store.audit.verify_chain() == chain


async def test_cancelled_block_rolls_back_and_the_store_stays_usable(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    entered = asyncio.Event()

    async def slow_sale() -> None:
        async with store.write() as tx:
            await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow_sale())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.attempts.history(shop_id)).items == ()
    async with store.write() as tx:
        await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
    assert len((await store.attempts.history(shop_id)).items) == 1


async def test_nested_write_in_one_task_is_refused(store: Store) -> None:
    async with store.write():
        with pytest.raises(RuntimeError, match="already open"):
            async with store.write():
                pass


async def test_full_disk_gives_a_clear_error_and_loses_nothing(
    store: Store, clock: ManualClock
) -> None:
    shop_id, till_id = await make_shop(store)
    async with store.write() as tx:
        pages = (await tx.fetchone("PRAGMA page_count"))[0]  # type: ignore[index]
        # A tiny ceiling on the file stands in for a full disk: SQLite answers SQLITE_FULL.
        await tx.fetchone(f"PRAGMA max_page_count = {pages + 3}")
    saved: list[int] = []
    with pytest.raises(StoreFullError) as caught:
        for _ in range(500):
            async with store.write() as tx:
                attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
                await store.attempts.transition(
                    tx,
                    shop_id,
                    attempt.id,
                    {AttemptState.CREATED},
                    AttemptState.FAILED,
                    Actor.CASHIER,
                    result_desc="x" * 300,
                )
            saved.append(attempt.id)
    assert "is full" in str(caught.value)
    assert "everything saved before it is intact" in str(caught.value)
    assert saved, "the ceiling should allow a few sales first"

    stored = (await store.attempts.history(shop_id, limit=1000)).items
    assert sorted(a.id for a in stored) == saved
    assert all(a.state is AttemptState.FAILED for a in stored)
    chain = await store.audit.verify_chain()
    assert chain.intact
    integrity = await store.db.fetchone("PRAGMA integrity_check")
    assert integrity is not None and integrity[0] == "ok"

    async with store.write() as tx:
        await tx.fetchone("PRAGMA max_page_count = 1073741823")
    async with store.write() as tx:
        await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
    assert len((await store.attempts.history(shop_id, limit=1000)).items) == len(saved) + 1


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file read-only for this process. Root ignores file modes, so as root the file
    is also made immutable (chattr +i), which binds root too; undone after the test."""
    immutable: list[Path] = []

    def apply(path: Path) -> None:
        if path.is_dir():
            path.chmod(0o555)
        else:
            path.chmod(0o444)
            path.parent.chmod(0o555)
        if os.geteuid() == 0:
            done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"running as root and chattr +i is not available: {done.stderr!r}")
            immutable.append(path)

    yield apply
    for path in immutable:
        subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755 if path.is_dir() else 0o644)


async def test_read_only_file_gives_a_clear_error_and_loses_nothing(
    tmp_path: Path, clock: ManualClock, make_read_only: Callable[[Path], None]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "till.db"
    store = await Store.open(path, clock=clock)
    async with store.write() as tx:
        await tx.execute(
            "INSERT INTO shops VALUES ('ro', 'RO', 'platform', NULL, NULL, 'RO', 1,"
            " 'pending', NULL, 1, 1)"
        )
    await store.close()
    before = path.read_bytes()
    make_read_only(path)

    with pytest.raises(StoreReadOnlyError) as caught:
        await Store.open(path, clock=clock)
    assert "cannot be written" in str(caught.value)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before

    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    folder.chmod(0o755)
    path.chmod(0o644)
    reopened = await Store.open(path, clock=clock)
    try:
        assert await reopened.db.fetchone("SELECT 1 FROM shops WHERE id = 'ro'")
        integrity = await reopened.db.fetchone("PRAGMA integrity_check")
        assert integrity is not None and integrity[0] == "ok"
    finally:
        await reopened.close()


def test_read_only_error_type_maps_from_sqlite() -> None:
    from smartduka_tui.store.db import translate

    error = sqlite3.OperationalError("attempt to write a readonly database")
    error.sqlite_errorcode = sqlite3.SQLITE_READONLY
    assert isinstance(translate(Path("x.db"), error), StoreReadOnlyError)


async def test_two_writers_never_see_database_is_locked(
    tmp_path: Path, clock: ManualClock, keyring: Keyring
) -> None:
    """Two connections (two Store objects) and several tasks on each write at once. Each
    transaction reads before it writes (the audit head), the pattern that fails at once with
    "database is locked" under a deferred BEGIN."""
    path = tmp_path / "till.db"
    first = await Store.open(path, clock=clock, keyring=keyring)
    second = await Store.open(path, clock=clock, keyring=keyring)
    try:
        shop_id, till_id = await make_shop(first)

        async def writer(store: Store, sales: int) -> None:
            for _ in range(sales):
                async with store.write() as tx:
                    attempt = await store.attempts.create(tx, new_attempt(clock, shop_id, till_id))
                    await store.attempts.transition(
                        tx,
                        shop_id,
                        attempt.id,
                        {AttemptState.CREATED},
                        AttemptState.PENDING,
                        Actor.CASHIER,
                    )
                await store.attempts.history(shop_id, limit=5)

        await asyncio.gather(*(writer(s, 15) for s in (first, second) for _ in range(3)))
        total = len((await first.attempts.history(shop_id, limit=1000)).items)
        assert total == 2 * 3 * 15
        chain = await second.audit.verify_chain()
        assert chain.intact
        assert chain.entries >= 2 * total
    finally:
        await first.close()
        await second.close()


def test_data_folder_lock_names_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    with acquire_data_dir_lock(folder):
        with pytest.raises(DataDirLockedError) as caught:
            acquire_data_dir_lock(folder)
        assert caught.value.pid == os.getpid()
        assert f"process {os.getpid()}" in str(caught.value)
        assert str(folder) in str(caught.value)
    with acquire_data_dir_lock(folder) as again:
        assert again.held


def test_lock_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from smartduka_tui.store import acquire_data_dir_lock\n"
            "lock = acquire_data_dir_lock(sys.argv[1])\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirLockedError) as caught:
            acquire_data_dir_lock(folder)
        assert caught.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    with acquire_data_dir_lock(folder) as lock:
        assert lock.held


async def test_new_database_files_are_private(tmp_path: Path, clock: ManualClock) -> None:
    store = await Store.open(tmp_path / "till.db", clock=clock)
    try:
        async with store.write() as tx:
            await tx.execute("INSERT INTO schema_version VALUES (999, 0, 'x')")
            await tx.execute("DELETE FROM schema_version WHERE version = 999")
        for name in ("till.db", "till.db-wal", "till.db-shm"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        await store.close()


async def test_database_in_a_read_only_folder_is_refused_clearly(
    tmp_path: Path, make_read_only: Callable[[Path], None]
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    make_read_only(folder)
    with pytest.raises(StoreReadOnlyError, match="cannot be written"):
        await Database.open(folder / "till.db")
    assert not (folder / "till.db").exists()


async def test_the_attempt_truth_migration_reads_old_rows_facts_from_their_audit(
    tmp_path: Path,
) -> None:
    """Rows written before the attempt row held confirming / handed over / finished get them
    from their audit entries once, so a confirmation in progress survives the upgrade."""
    truth = next(m for m in MIGRATIONS if m.description.startswith("the attempt row holds"))
    path = tmp_path / "old.db"
    old = await Database.open(path, upgrade_to=truth.version - 1)
    try:
        async with old.write() as tx:
            await tx.execute(
                "INSERT INTO shops VALUES ('s1', 'S', 'platform', NULL, NULL, 'KP', 1,"
                " 'pending', NULL, 1, 1)"
            )
            await tx.execute("INSERT INTO tills VALUES ('t1', 's1', 'https://r', 'k1', 1, 1)")
            for number, state in ((1, "PENDING"), (2, "FAILED"), (3, "PENDING")):
                await tx.execute(
                    "INSERT INTO attempts (id, shop_id, till_id, sale_ref, amount, phone,"
                    " idempotency_key, attempt_ref, attempt_number, state, created_at, expires_at,"
                    " updated_at) VALUES (?, 's1', 't1', ?, 10, ?, ?, ?, 1, ?, 1000, 9000, 8000)",
                    (
                        number,
                        f"S{number}",
                        f"25471200000{number}",
                        f"key{number}",
                        f"ref{number}",
                        state,
                    ),
                )
            entries = [
                (1, 2000, "evidence.awaiting_confirmation", '{"receipt": "R1"}'),
                (2, 3000, "attempt.handed_to_reconciler", "{}"),
                (2, 5000, "attempt.transition", '{"to": "FAILED"}'),
                (3, 2000, "evidence.awaiting_confirmation", '{"receipt": "R3"}'),
                (3, 2500, "evidence.confirmation_settled", "{}"),
            ]
            for attempt_id, at, action, detail in entries:
                await tx.execute(
                    "INSERT INTO audit_log (at, shop_id, actor, action, attempt_id, detail,"
                    " prev_hash, hash) VALUES (?, 's1', 'system', ?, ?, ?, '', '')",
                    (at, action, attempt_id, detail),
                )
    finally:
        await old.close()
    upgraded = await Database.open(path)
    try:
        rows = await upgraded.fetchall(
            "SELECT id, confirming, confirming_receipt, handed_over_at, finished_at"
            " FROM attempts ORDER BY id"
        )
        assert [tuple(row) for row in rows] == [
            (1, "success", "R1", None, None),
            (2, None, None, 3000, 5000),
            (3, None, None, None, None),
        ]
    finally:
        await upgraded.close()
