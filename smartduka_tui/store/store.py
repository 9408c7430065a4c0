"""The store as the rest of the till sees it: repositories over one database, and the vault.

async with open_till_store(settings.data_dir, keyring_file=settings.keyring_file) as store:
    async with store.write() as tx:
        attempt = await store.attempts.create(tx, new_attempt)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path

from smartduka_tui.clock import Clock
from smartduka_tui.store.attempts import Attempts
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.c2b import C2BPayments
from smartduka_tui.store.credentials import Credentials
from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.errors import KeyMissingError
from smartduka_tui.store.initiator import Initiators
from smartduka_tui.store.lock import acquire_data_dir_lock
from smartduka_tui.store.problems import Problems
from smartduka_tui.store.pull import PulledStatement
from smartduka_tui.store.sales import Sales
from smartduka_tui.store.shifts import Shifts
from smartduka_tui.store.shops import Shops
from smartduka_tui.store.statement import StatementRequests
from smartduka_tui.store.tills import Tills
from smartduka_tui.store.vault import Keyring, load_keyring

DATABASE_FILE_NAME = "till.db"
KEYRING_FILE_NAME = "keyring"


def database_path(data_dir: Path) -> Path:
    return Path(data_dir) / DATABASE_FILE_NAME


def keyring_path(data_dir: Path, keyring_file: Path | None = None) -> Path:
    return Path(keyring_file) if keyring_file is not None else Path(data_dir) / KEYRING_FILE_NAME


class Store:
    """Repositories over one open database. Writes go through `store.write()`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.credentials = Credentials(db)
        self.audit = AuditLog(db, self.credentials)
        self.shops = Shops(db, self.credentials, self.audit)
        self.initiators = Initiators(self.credentials, self.shops, self.audit)
        self.tills = Tills(db, self.credentials, self.audit)
        self.attempts = Attempts(db, self.audit)
        self.problems = Problems(db, self.audit)
        self.statement = StatementRequests(db, self.audit)
        self.c2b = C2BPayments(db, self.audit)
        self.pull = PulledStatement(db, self.audit)
        self.sales = Sales(db, self.audit)
        self.shifts = Shifts(db, self.audit)

    @classmethod
    async def open(
        cls, path: str | Path, *, clock: Clock | None = None, keyring: Keyring | None = None
    ) -> Store:
        """Open the database (migrating it) and, given a keyring, check it against the
        database's key checks (WrongKeyError / KeyMissingError stop here, before any use)."""
        db = await Database.open(path, clock)
        store = cls(db)
        if keyring is not None:
            try:
                await store.credentials.use_keyring(keyring)
            except BaseException:
                await db.close()
                raise
        return store

    def write(self) -> AbstractAsyncContextManager[WriteTx]:
        """One `BEGIN IMMEDIATE` transaction; see Database.write."""
        return self.db.write()

    @property
    def keyring(self) -> Keyring | None:
        return self.credentials.keyring

    async def close(self) -> None:
        await self.db.close()


@asynccontextmanager
async def open_till_store(
    data_dir: str | Path,
    *,
    keyring_file: Path | None = None,
    clock: Clock | None = None,
    require_keys: bool = True,
    take_lock: bool = True,
) -> AsyncIterator[Store]:
    """Take the data folder's lock, open `<data_dir>/till.db` with the keyring (or the key in
    the environment), and give the store; all released on the way out.

    `take_lock=False` is for commands that only read beside the running till (SQLite's WAL
    serves both); the folder's engine, feed and reconciler stay the lock holder's alone.

    With `require_keys=False` a missing key is allowed (the vault then refuses to open
    secrets); a malformed, wrong or unprotected one still stops here.
    """
    folder = Path(data_dir)
    # Without the lock (read-only commands beside the open app) nothing else is held. A folder
    # with no database yet has no app beside it: that first run takes the lock and creates it.
    if not database_path(folder).exists():
        take_lock = True
    with acquire_data_dir_lock(folder) if take_lock else nullcontext():
        try:
            keyring: Keyring | None = load_keyring(keyring_path(folder, keyring_file))
        except KeyMissingError:
            if require_keys:
                raise
            keyring = None
        store = await Store.open(database_path(folder), clock=clock, keyring=keyring)
        try:
            yield store
        finally:
            await store.close()
