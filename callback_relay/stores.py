"""Which `RelayStore` the settings select: PostgreSQL when `database_url` is set, else SQLite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from callback_relay.settings import RelaySettings
from callback_relay.sqlite_store import SqliteStore
from callback_relay.store import RelayStore


def store_for(settings: RelaySettings) -> RelayStore:
    if settings.database_url is not None:
        # Imported here so an SQLite-only relay never loads the PostgreSQL driver.
        from callback_relay.postgres_store import PostgresStore

        return PostgresStore(settings.database_url.get_secret_value())
    return SqliteStore(
        settings.db,
        busy_timeout_ms=settings.busy_timeout_ms,
        group_commit_max=settings.group_commit_max,
    )


@contextlib.asynccontextmanager
async def opened_store(settings: RelaySettings) -> AsyncIterator[RelayStore]:
    """The settings' store, open for one command and closed after it."""
    store = store_for(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
