"""Which `RelayStore` the settings select: PostgreSQL when `database_url` is set, else SQLite."""

from __future__ import annotations

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
