"""Local storage: aiosqlite schema and repositories, the audit log and the credential vault.

The payment engine, the app and the CLI use this package's names; none of them writes SQL.
Open a store with `open_till_store(data_dir)` (lock + keys + database) or `Store.open(path)`;
write with `async with store.write() as tx:`; every shop-data call takes the shop id.

The names load on first use (`__getattr__`): importing one light module of the package (its
records, say) does not load the database layer, aiosqlite and the vault's cryptography, which
the cashier app needs only after its first screen is up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smartduka_tui.store.db import Database, WriteTx
    from smartduka_tui.store.errors import (
        AttemptConflictError,
        AttemptInputError,
        DatabaseError,
        DataDirLockedError,
        IdempotencyKeyExistsError,
        InputError,
        InvalidTransitionError,
        KeyMalformedError,
        KeyMissingError,
        KeyringPermissionError,
        NotFoundError,
        PhoneBusyError,
        ShopConfigError,
        StoreBusyError,
        StoreCorruptError,
        StoreDamagedError,
        StoreError,
        StoreFullError,
        StoreIOError,
        StoreReadOnlyError,
        StoreTooNewError,
        TamperedPinError,
        TamperedRoutingError,
        TamperedSecretError,
        VaultError,
        WrongKeyError,
    )
    from smartduka_tui.store.lock import DataDirLock, acquire_data_dir_lock
    from smartduka_tui.store.records import (
        Attempt,
        AttemptFilter,
        AuditEntry,
        ChainReport,
        Enrolment,
        NewAttempt,
        Page,
        PageCursor,
        Problem,
        Shop,
        ShopConfig,
        ShopCredentials,
        ShopSecrets,
        StateOrFlags,
        Summary,
        Till,
        TillCredentials,
        TransitionResult,
    )
    from smartduka_tui.store.sales import NewTender, Sale, SaleLine, SaleStateError, SaleTender
    from smartduka_tui.store.secret import Secret
    from smartduka_tui.store.store import Store, database_path, keyring_path, open_till_store
    from smartduka_tui.store.vault import Keyring, create_keyring, generate_key_hex, load_keyring

# Where each public name lives.
_HOMES: dict[str, str] = {
    name: home
    for home, names in {
        "db": "Database WriteTx",
        "errors": (
            "AttemptConflictError AttemptInputError DatabaseError DataDirLockedError"
            " IdempotencyKeyExistsError InputError InvalidTransitionError KeyMalformedError"
            " KeyMissingError KeyringPermissionError NotFoundError PhoneBusyError ShopConfigError"
            " StoreBusyError StoreCorruptError StoreDamagedError StoreError StoreFullError"
            " StoreIOError StoreReadOnlyError StoreTooNewError TamperedPinError"
            " TamperedRoutingError TamperedSecretError VaultError WrongKeyError"
        ),
        "lock": "DataDirLock acquire_data_dir_lock",
        "records": (
            "Attempt AttemptFilter AuditEntry ChainReport Enrolment NewAttempt Page PageCursor"
            " Problem Shop ShopConfig ShopCredentials ShopSecrets StateOrFlags Summary Till"
            " TillCredentials TransitionResult"
        ),
        "sales": "NewTender Sale SaleLine SaleStateError SaleTender",
        "secret": "Secret",
        "store": "Store database_path keyring_path open_till_store",
        "vault": "Keyring create_keyring generate_key_hex load_keyring",
    }.items()
    for name in names.split()
}

__all__ = [
    "Attempt",
    "AttemptConflictError",
    "AttemptFilter",
    "AttemptInputError",
    "AuditEntry",
    "ChainReport",
    "DataDirLock",
    "DataDirLockedError",
    "Database",
    "DatabaseError",
    "Enrolment",
    "IdempotencyKeyExistsError",
    "InputError",
    "InvalidTransitionError",
    "KeyMalformedError",
    "KeyMissingError",
    "Keyring",
    "KeyringPermissionError",
    "NewAttempt",
    "NewTender",
    "NotFoundError",
    "Page",
    "PageCursor",
    "PhoneBusyError",
    "Problem",
    "Sale",
    "SaleLine",
    "SaleStateError",
    "SaleTender",
    "Secret",
    "Shop",
    "ShopConfig",
    "ShopConfigError",
    "ShopCredentials",
    "ShopSecrets",
    "StateOrFlags",
    "Store",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreDamagedError",
    "StoreError",
    "StoreFullError",
    "StoreIOError",
    "StoreReadOnlyError",
    "StoreTooNewError",
    "Summary",
    "TamperedPinError",
    "TamperedRoutingError",
    "TamperedSecretError",
    "Till",
    "TillCredentials",
    "TransitionResult",
    "VaultError",
    "WriteTx",
    "WrongKeyError",
    "acquire_data_dir_lock",
    "create_keyring",
    "database_path",
    "generate_key_hex",
    "keyring_path",
    "load_keyring",
    "open_till_store",
]


if not TYPE_CHECKING:
    # Hidden from mypy, which then still refuses a name the package does not export.

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value
        return value
