"""Backups of the till database with SQLite's online backup API, and restoring one.

A backup is a consistent copy taken page by page while the till may be running (SQLite's
backup API reads a snapshot, so a payment written meanwhile is either in it or not, never half
in). It holds what the database holds, secrets sealed, and never the keys: the keyring (or
SMARTDUKA_ENCRYPTION_KEY) is backed up apart from it. A restore checks the file before it
replaces anything: a SmartDuka till database, undamaged, no newer than this version, and opened
by this till's keys.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from smartduka_tui.store.db import translate
from smartduka_tui.store.errors import (
    DatabaseError,
    InputError,
    KeyMissingError,
    StoreCorruptError,
    StoreDamagedError,
    StoreTooNewError,
)
from smartduka_tui.store.migrations import APPLICATION_ID, LATEST_VERSION
from smartduka_tui.store.vault import Keyring, Vault

# Pages copied per step: small steps let the till's writer in between them.
_PAGES_PER_STEP = 256


def _copy(source: sqlite3.Connection, target: Path, journal_mode: str = "DELETE") -> None:
    with closing(sqlite3.connect(target)) as dest:
        source.backup(dest, pages=_PAGES_PER_STEP)
        dest.execute(f"PRAGMA journal_mode = {journal_mode}")


def _read_only(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def _create_private(path: Path, what: str) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise InputError(what, f"{path} already exists; choose a new file name") from None


def backup_database(database: Path, target: Path) -> int:
    """Copy `database` into the new file `target` (mode 0600) and check the copy; returns its
    size in bytes. InputError if `target` exists; the store's errors for a full disk and such
    (then no half-written `target` is left)."""
    target = Path(target)
    if not Path(database).exists():
        raise InputError("database", f"there is no till database at {database} to back up")
    _create_private(target, "backup_file")
    try:
        with _read_only(database) as source:
            _copy(source, target)
        check_backup(target)
    except sqlite3.Error as error:
        target.unlink(missing_ok=True)
        raise _translated(target, error) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target.stat().st_size


def check_backup(path: Path) -> int:
    """The schema version of the till database in `path`, after checking it is one (its
    application id), undamaged (quick_check) and not from a newer SmartDuka."""
    if not Path(path).is_file():
        raise InputError("backup_file", f"there is no file at {path}")
    try:
        with _read_only(path) as conn:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if app_id != APPLICATION_ID:
                raise StoreCorruptError(path)
            finding = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if finding != "ok":
                raise StoreDamagedError(path, str(finding))
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    except sqlite3.Error as error:
        raise _translated(path, error) from None
    if version is None:
        raise StoreCorruptError(path)
    if int(version) > LATEST_VERSION:
        raise StoreTooNewError(path, int(version), LATEST_VERSION)
    return int(version)


def check_backup_keys(path: Path, keyring: Keyring) -> None:
    """WrongKeyError / KeyMissingError unless `keyring` opens the secrets sealed in `path`
    (a backup restored without its keys would stop the till at its next start)."""
    vault = Vault(keyring)
    try:
        with _read_only(path) as conn:
            checks = conn.execute("SELECT kid, check_blob FROM key_checks").fetchall()
            used = [row[0] for row in conn.execute("SELECT DISTINCT kid FROM secrets")]
    except sqlite3.Error as error:
        raise _translated(path, error) from None
    missing = vault.missing_kids(((kid, bytes(blob)) for kid, blob in checks), used)
    if missing:
        raise KeyMissingError(
            f"the backup's secrets are sealed with key(s) {', '.join(missing)}, which "
            f"{keyring.source} does not have; nothing was restored. Use the keyring that "
            "belongs to this backup."
        )


def restore_database(backup: Path, database: Path) -> Path | None:
    """Replace `database` with the checked `backup`, keeping the database it replaces beside it
    as `<name>.before-restore` (returned; None when there was none). The caller holds the data
    folder's lock, so no till is writing."""
    check_backup(backup)
    database = Path(database)
    kept: Path | None = None
    try:
        if database.exists():
            kept = database.with_name(database.name + ".before-restore")
            kept.unlink(missing_ok=True)
            _create_private(kept, "database")
            with closing(sqlite3.connect(database)) as current:
                _copy(current, kept)
        else:
            _create_private(database, "database")
        with _read_only(backup) as source:
            _copy(source, database, journal_mode="WAL")
    except sqlite3.Error as error:
        raise _translated(database, error) from None
    return kept


def _translated(path: Path, error: sqlite3.Error) -> DatabaseError:
    found = translate(path, error)
    if found is not None:
        return found
    return StoreCorruptError(path)
