"""Every error the store raises, each with a message a person can act on.

All derive from `StoreError`, so a face (CLI, app) catches one type and prints `str(error)`
without a traceback. No message ever contains a secret, a key or a full callback path.

The hierarchy:

* StoreError (Exception)
  * DatabaseError
    * StoreFullError
    * StoreReadOnlyError
    * StoreCorruptError
    * StoreDamagedError
    * StoreTooNewError
    * StoreIOError
    * StoreBusyError
  * DataDirLockedError
  * InputError (also ValueError)
    * ShopConfigError
    * AttemptInputError
  * NotFoundError (also LookupError)
  * AttemptConflictError
    * IdempotencyKeyExistsError
    * PhoneBusyError
  * InvalidTransitionError (also ValueError)
  * VaultError
    * KeyMissingError
    * KeyMalformedError
    * KeyringPermissionError
    * WrongKeyError
    * TamperedSecretError
    * TamperedPinError
    * TamperedRoutingError
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smartduka_tui.model import AttemptState
    from smartduka_tui.store.records import Attempt


class StoreError(Exception):
    """Base of every store, vault and validation error."""


# --- the database file -------------------------------------------------------------------


class DatabaseError(StoreError):
    """The database could not be read or written; nothing of the failed change was saved."""


class StoreFullError(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the disk holding {path} is full: this change was not saved, and everything saved "
            "before it is intact. Free some space on that disk, then try again."
        )


class StoreReadOnlyError(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} cannot be written (the file or its folder is read-only, or the disk is "
            "mounted read-only): nothing was changed. Make the file and its folder writable by "
            "this user (for example `chmod u+w` on both), then try again."
        )


class StoreCorruptError(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} is not a SmartDuka till database, or it is damaged. Point data_dir at the "
            "right folder, or restore the database from a backup."
        )


class StoreDamagedError(DatabaseError):
    """SQLite's quick_check found damage in the file (a corrupted page or index)."""

    def __init__(self, path: Path, finding: str) -> None:
        self.finding = finding
        super().__init__(
            f"{path} is damaged (SQLite's integrity check says: {finding}). Nothing was changed. "
            "Stop using this till, keep a copy of the file for support, and restore the last "
            "good backup with `smartduka restore BACKUP_FILE` (backups are made with "
            "`smartduka backup FILE`)."
        )


class StoreTooNewError(DatabaseError):
    def __init__(self, path: Path, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"{path} is at schema version {found}, but this SmartDuka only knows versions up to "
            f"{known}: it was written by a newer SmartDuka. Upgrade SmartDuka, or restore a "
            f"backup made by this version. Nothing was changed."
        )


class StoreIOError(DatabaseError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"reading or writing {path} failed ({reason}): this change was not saved. Check the "
            "disk, then try again."
        )


class StoreBusyError(DatabaseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} stayed locked by another writer for too long: this change was not saved. "
            "Try again."
        )


class DataDirLockedError(StoreError):
    """Another process holds the data folder (one till process per folder)."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"the data folder {data_dir} is in use by {holder} (another SmartDuka on this "
            "folder). Close that one first, or use another data folder."
        )


# --- validation of input -----------------------------------------------------------------


class InputError(StoreError, ValueError):
    """A value given to the store is not acceptable; nothing was saved."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ShopConfigError(InputError):
    """A shop's configuration is not acceptable; nothing was saved."""


class AttemptInputError(InputError):
    """A payment attempt's values are not acceptable; nothing was saved."""


class NotFoundError(StoreError, LookupError):
    """The shop, till or attempt named does not exist (for that shop)."""


# --- payment attempts ----------------------------------------------------------------------


class AttemptConflictError(StoreError):
    """A new attempt collides with an existing one; `existing` is that attempt."""

    def __init__(self, message: str, existing: Attempt) -> None:
        self.existing = existing
        super().__init__(message)


class IdempotencyKeyExistsError(AttemptConflictError):
    def __init__(self, existing: Attempt) -> None:
        super().__init__(
            f"an attempt with this idempotency key already exists (attempt {existing.id})",
            existing,
        )


class PhoneBusyError(AttemptConflictError):
    def __init__(self, existing: Attempt) -> None:
        super().__init__(
            f"this phone already has a live payment on this till (attempt {existing.id}, "
            f"{existing.state.value}); wait for it to finish",
            existing,
        )


class InvalidTransitionError(StoreError, ValueError):
    """A transition the store never allows (leaving COMPLETED)."""

    def __init__(self, attempt_id: int, current: AttemptState, new: AttemptState) -> None:
        super().__init__(
            f"attempt {attempt_id} is {current.value} and cannot become {new.value}: a "
            "completed payment is never left (add a flag instead)"
        )


# --- the credential vault ------------------------------------------------------------------


class VaultError(StoreError):
    """A key or an encrypted secret is missing, malformed, wrong or tampered with."""


class KeyMissingError(VaultError):
    """No key at all, or not the key a stored secret needs."""


class KeyMalformedError(VaultError):
    """A key or the keyring file is not in the expected format."""


class KeyringPermissionError(VaultError):
    """The keyring file is readable or writable by others."""


class WrongKeyError(VaultError):
    """A key is present but is not the key the database's secrets were encrypted with."""


class TamperedSecretError(VaultError):
    """The key is right, yet a stored secret fails authentication: the data was altered."""


class TamperedPinError(VaultError):
    """The stored manager PIN fails its check against the key, or vanished: the data was
    altered. Only `smartduka manager reset-pin` (which needs the key) clears it."""


class TamperedRoutingError(VaultError):
    """A shop's or till's routing fields (shortcode, relay URL) differ from their sealed copy:
    the database was edited to send credentials or money elsewhere."""
