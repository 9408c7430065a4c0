"""The relay's storage interface, the records that cross it, and what its two stores share.

Everything durable goes through `RelayStore`: `SqliteStore` is the embedded default, and
`PostgresStore` lets several relay instances share one database. Times are integer milliseconds
since the Unix epoch (UTC), read from the injectable clock by the caller. Every inbox query is
filtered by till and shop.

The stores run statements their own way (SQLite through its one writer thread and a reader
thread, PostgreSQL in pooled transactions). `RelayStore` writes the registry, meta, checkpoint
and retention methods once, in SQLite's "?" style, over two primitives each store provides
(`read_steps`, `write_steps`). The callback hot path (append, claim, ack) stays in each store,
tuned for its database.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from callback_relay.types import AppendOutcome, EventFlag, EventKind, EventState

if TYPE_CHECKING:
    from callback_relay.platform import BrokerStore


class StoreUnavailable(RuntimeError):
    """The store could not do its job (disk full, database locked or unreadable).

    The relay answers 503 and never claims success. The message never carries secrets.
    """


class StoreVersionError(RuntimeError):
    """The database was written by a newer relay than this one."""


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """One callback secret of a shop, still encrypted."""

    shop_id: str
    kid: str
    ciphertext: bytes = field(repr=False)
    created_at: int
    retired_at: int | None = None


@dataclass(frozen=True, slots=True)
class TillRecord:
    till_id: str
    shop_id: str
    key_sha256: bytes = field(repr=False)
    created_at: int
    revoked_at: int | None = None
    # 0: enrolled before per-till callback keys (signs with the shop secret until rekeyed);
    # from 1, the revision its derived callback key was made for.
    key_revision: int = 0


@dataclass(frozen=True, slots=True)
class ShopRecord:
    shop_id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """Every shop, its live (unretired) secrets and its tills, as of one registry version."""

    version: int
    shops: tuple[ShopRecord, ...]
    secrets: tuple[SecretRecord, ...]
    tills: tuple[TillRecord, ...]


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: EventKind
    shop_id: str
    till_id: str
    attempt_ref: str
    received_at: int
    body: bytes = field(repr=False)
    body_sha256: str
    detail: str | None = None
    # Store only while the till holds fewer than this many unacknowledged events of this kind.
    cap: int | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    event_id: int
    outcome: AppendOutcome


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the feed hands it out."""

    event_id: int
    kind: EventKind
    shop_id: str
    till_id: str
    attempt_ref: str
    received_at: int
    body: bytes = field(repr=False)
    body_sha256: str
    flags: tuple[EventFlag, ...]
    detail: str | None
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Events handed to a till now, and when its next in-flight event becomes visible again."""

    events: tuple[StoredEvent, ...]
    next_visible_at: int | None


@dataclass(frozen=True, slots=True)
class AckResult:
    found: bool
    already: bool = False
    received_at: int | None = None


@dataclass(frozen=True, slots=True)
class TillStats:
    shop_id: str
    till_id: str
    unacked: int
    dead: int
    oldest_received_at: int | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The latest audit-log checkpoint a till has lodged: its sequence number and chain head."""

    seq: int
    head: str
    at: int


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """`outcome` is "stored", "same", "behind" or "conflict"; `stored` is the checkpoint kept."""

    outcome: str
    stored: Checkpoint


Row = tuple[Any, ...]
Step = tuple[str, Sequence[Any]]

PRUNE_CHUNK = 5000
EVENT_COLUMNS = (
    "id, kind, shop_id, till_id, attempt_ref, received_at, body, body_sha256, flags, detail, "
    "delivery_count"
)
_SHOPS = "SELECT shop_id, name, created_at FROM shops"
_SECRETS = "SELECT shop_id, kid, ciphertext, created_at, retired_at FROM shop_secrets"
_TILLS = "SELECT till_id, shop_id, key_sha256, created_at, revoked_at, key_revision FROM tills"
_META_VALUE = "SELECT value FROM meta WHERE key = ?"


@dataclass(frozen=True, slots=True)
class Done:
    """What one statement of a write did: the rows it changed and the rows it returned."""

    rowcount: int
    rows: list[Row]


def settle_opened(future: asyncio.Future[None], error: BaseException | None) -> None:
    """On the event loop: tell `open()` whether its writer thread connected."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def secret_record(row: Row) -> SecretRecord:
    return SecretRecord(row[0], row[1], bytes(row[2]), row[3], row[4])


def till_record(row: Row) -> TillRecord:
    return TillRecord(row[0], row[1], bytes(row[2]), row[3], row[4], row[5])


def stored_event(row: Row, delivery_count: int) -> StoredEvent:
    """An `EVENT_COLUMNS` row as the feed hands it out."""
    return StoredEvent(
        event_id=row[0],
        kind=EventKind(row[1]),
        shop_id=row[2],
        till_id=row[3],
        attempt_ref=row[4],
        received_at=row[5],
        body=bytes(row[6]),
        body_sha256=row[7],
        flags=tuple(EventFlag(f) for f in row[8].split(",") if f),
        detail=row[9] or None,
        delivery_count=delivery_count,
    )


def _meta_of(keys: list[str]) -> Step:
    """The rows of `keys` in meta, as (key, value)."""
    marks = ", ".join("?" * len(keys))
    return (f"SELECT key, value FROM meta WHERE key IN ({marks})", keys)  # noqa: S608 - marks only


class RelayStore(ABC):
    """Durable registry and inbox. Writes are committed before the call returns.

    A store names where its registry version lives, and runs steps: `(sql, params)` pairs.
    """

    REGISTRY_VERSION: ClassVar[str]
    BUMP_REGISTRY: ClassVar[str]

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call `callback(till_id)` when another process commits an event for that till."""

    @abstractmethod
    def broker(self) -> BrokerStore:
        """The Daraja broker's tables in this same store (shared by every instance on it)."""

    @abstractmethod
    async def read_steps(self, *steps: Step) -> list[list[Row]]:
        """Each step's rows, all read in one snapshot."""

    @abstractmethod
    async def write_steps(self, *steps: Step) -> list[Done]:
        """Run the steps in one transaction, committed before this returns."""

    # Inbox: each store's own, tuned for its database.

    @abstractmethod
    async def append(self, event: NewEvent) -> AppendResult: ...

    @abstractmethod
    async def claim(
        self,
        shop_id: str,
        till_id: str,
        now: int,
        visibility_ms: int,
        max_deliveries: int,
        limit: int,
    ) -> Claim: ...

    @abstractmethod
    async def ack(self, shop_id: str, till_id: str, event_id: int, now: int) -> AckResult: ...

    # What both stores run alike.

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        (rows,) = await self.read_steps((sql, params))
        return rows[0] if rows else None

    async def _changed(self, sql: str, params: Sequence[Any], *then: Step) -> bool:
        """True when `sql` changed one row; `then` runs in the same transaction."""
        done = await self.write_steps((sql, params), *then)
        return done[0].rowcount == 1

    async def check_writable(self) -> None:
        """Commit a tiny write, or raise StoreUnavailable: what `/healthz` reports."""
        await self.write_steps(
            (
                "INSERT INTO meta (key, value) VALUES ('health_write', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (b"",),
            )
        )

    # Registry.

    async def get_meta(self, key: str) -> bytes | None:
        row = await self._one(_META_VALUE, (key,))
        return None if row is None else bytes(row[0])

    async def set_meta_if_absent(self, key: str, value: bytes) -> bytes:
        return (await self.set_meta_many_if_absent([(key, value)]))[key]

    async def registry_version(self) -> int:
        row = await self._one(self.REGISTRY_VERSION)
        return 0 if row is None else int(row[0])

    async def load_registry(self) -> RegistrySnapshot:
        version, shops, secrets, tills = await self.read_steps(
            (self.REGISTRY_VERSION, ()),
            (_SHOPS, ()),
            (_SECRETS + " WHERE retired_at IS NULL", ()),
            (_TILLS, ()),
        )
        return RegistrySnapshot(
            int(version[0][0]) if version else 0,
            tuple(ShopRecord(*r) for r in shops),
            tuple(secret_record(r) for r in secrets),
            tuple(till_record(r) for r in tills),
        )

    async def get_shop(self, shop_id: str) -> ShopRecord | None:
        row = await self._one(_SHOPS + " WHERE shop_id = ?", (shop_id,))
        return None if row is None else ShopRecord(*row)

    async def list_secrets(self, shop_id: str) -> tuple[SecretRecord, ...]:
        (rows,) = await self.read_steps(
            (_SECRETS + " WHERE shop_id = ? ORDER BY created_at, kid", (shop_id,))
        )
        return tuple(secret_record(r) for r in rows)

    async def get_till(self, till_id: str) -> TillRecord | None:
        row = await self._one(_TILLS + " WHERE till_id = ?", (till_id,))
        return None if row is None else till_record(row)

    async def add_shop(self, shop: ShopRecord, secret: SecretRecord, till: TillRecord) -> None:
        await self.write_steps(
            (
                "INSERT INTO shops (shop_id, name, created_at) VALUES (?, ?, ?)",
                (shop.shop_id, shop.name, shop.created_at),
            ),
            _insert_secret(secret),
            _insert_till(till),
            (self.BUMP_REGISTRY, ()),
        )

    async def add_till(self, till: TillRecord) -> None:
        await self.write_steps(_insert_till(till), (self.BUMP_REGISTRY, ()))

    async def revoke_till(self, till_id: str, now: int) -> bool:
        return await self._changed(
            "UPDATE tills SET revoked_at = ? WHERE till_id = ? AND revoked_at IS NULL",
            (now, till_id),
            (self.BUMP_REGISTRY, ()),
        )

    async def rekey_till(self, till_id: str, key_sha256: bytes, revision: int) -> bool:
        """Give a live till a new key hash and callback-key revision (the previous revision
        must be `revision - 1`); False if it is revoked or moved on meanwhile."""
        return await self._changed(
            "UPDATE tills SET key_sha256 = ?, key_revision = ? "
            "WHERE till_id = ? AND revoked_at IS NULL AND key_revision = ?",
            (key_sha256, revision, till_id, revision - 1),
            (self.BUMP_REGISTRY, ()),
        )

    async def add_secret(self, secret: SecretRecord) -> None:
        await self.write_steps(_insert_secret(secret), (self.BUMP_REGISTRY, ()))

    async def retire_secret(self, shop_id: str, kid: str, now: int) -> bool:
        return await self._changed(
            "UPDATE shop_secrets SET retired_at = ? "
            "WHERE shop_id = ? AND kid = ? AND retired_at IS NULL",
            (now, shop_id, kid),
            (self.BUMP_REGISTRY, ()),
        )

    # Inbox upkeep.

    async def replay_dead(self, till_id: str | None, now: int) -> int:
        """Dead-lettered events (of one till, or all) pending again, flagged as replayed."""
        replayed = EventFlag.REPLAYED.value
        (done,) = await self.write_steps(
            (
                "UPDATE events SET state = ?, delivery_count = 0, visible_at = ?, "
                "flags = CASE WHEN flags = '' THEN ? "
                "WHEN replace(',' || flags || ',', ',' || ? || ',', '') <> ',' || flags || ',' "
                "THEN flags ELSE flags || ',' || ? END "
                "WHERE state = ? AND (CAST(? AS TEXT) IS NULL OR till_id = ?) RETURNING till_id",
                (
                    EventState.PENDING.value,
                    now,
                    replayed,
                    replayed,
                    replayed,
                    EventState.DEAD.value,
                    till_id,
                    till_id,
                ),
            )
        )
        self.replayed({row[0] for row in done.rows})
        return len(done.rows)

    @abstractmethod
    def replayed(self, tills: set[str]) -> None:
        """Called after a replay commits, with the tills whose events are pending again."""

    async def sweep(self, now: int, max_deliveries: int) -> int:
        (done,) = await self.write_steps(
            (
                "UPDATE events SET state = ? WHERE state = ? AND delivery_count >= ? "
                "AND visible_at <= ?",
                (EventState.DEAD.value, EventState.PENDING.value, max_deliveries, now),
            )
        )
        return done.rowcount

    async def prune(self, before: int) -> int:
        """Delete what retention lets go: events acknowledged before `before`, security events
        received before it (acknowledged or not), and every event of a till revoked before it."""
        step = (
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE "
            "(state = ? AND acked_at < ?) OR (kind = ? AND received_at < ?) "
            "OR till_id IN (SELECT till_id FROM tills WHERE revoked_at < ?) LIMIT ?)",
            (EventState.ACKED.value, before, EventKind.SECURITY.value, before, before, PRUNE_CHUNK),
        )
        total = 0
        while True:
            (done,) = await self.write_steps(step)
            total += done.rowcount
            if done.rowcount < PRUNE_CHUNK:
                return total

    async def inbox_stats(self) -> tuple[TillStats, ...]:
        (rows,) = await self.read_steps(
            (
                "SELECT shop_id, till_id, COUNT(*), SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), "
                "MIN(received_at) FROM events WHERE state IN (?, ?) GROUP BY shop_id, till_id",
                (EventState.DEAD.value, EventState.PENDING.value, EventState.DEAD.value),
            )
        )
        return tuple(TillStats(r[0], r[1], r[2], int(r[3] or 0), r[4]) for r in rows)

    # Audit checkpoints (one per till, the latest kept).

    async def get_checkpoint(self, till_id: str) -> Checkpoint | None:
        row = await self._one(
            "SELECT seq, head, at FROM audit_checkpoints WHERE till_id = ?", (till_id,)
        )
        return None if row is None else Checkpoint(*row)

    async def put_checkpoint(
        self, shop_id: str, till_id: str, seq: int, head: str, now: int
    ) -> CheckpointResult:
        """Move the till's checkpoint forward only: one upsert that changes nothing unless `seq`
        is past the stored one, so two instances at once cannot both move it."""
        moved, current = await self.write_steps(
            (
                "INSERT INTO audit_checkpoints (till_id, shop_id, seq, head, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (till_id) DO UPDATE SET "
                "shop_id = excluded.shop_id, seq = excluded.seq, head = excluded.head, "
                "at = excluded.at WHERE audit_checkpoints.shop_id <> excluded.shop_id "
                "OR audit_checkpoints.seq < excluded.seq RETURNING seq",
                (till_id, shop_id, seq, head, now),
            ),
            ("SELECT seq, head, at FROM audit_checkpoints WHERE till_id = ?", (till_id,)),
        )
        stored = Checkpoint(*current.rows[0])
        if moved.rows:
            return CheckpointResult("stored", stored)
        if seq < stored.seq:
            return CheckpointResult("behind", stored)
        return CheckpointResult("same" if head == stored.head else "conflict", stored)

    # Batch reads (the receipt index asks 500 keys at a time).

    async def get_meta_many(self, keys: list[str]) -> dict[str, bytes]:
        """The values of those of `keys` that are set (absent keys are left out)."""
        if not keys:
            return {}
        (rows,) = await self.read_steps(_meta_of(keys))
        return {str(key): bytes(value) for key, value in rows}

    async def set_meta_many_if_absent(self, items: list[tuple[str, bytes]]) -> dict[str, bytes]:
        """`set_meta_if_absent` for each (key, value), committed together: every key's value as
        stored afterwards (the one given, or the one another writer set first)."""
        if not items:
            return {}
        values = ", ".join(["(?, ?)"] * len(items))
        _, read = await self.write_steps(
            (
                f"INSERT INTO meta (key, value) VALUES {values} ON CONFLICT (key) DO NOTHING",  # noqa: S608 - marks only
                [part for item in items for part in item],
            ),
            _meta_of([key for key, _ in items]),
        )
        return {str(key): bytes(value) for key, value in read.rows}

    async def delete_meta_if(self, key: str, value: bytes) -> bool:
        """Delete `key` only while its value is `value` (one atomic step): True when it was
        deleted, False when it is absent or holds another value (then nothing changed)."""
        return await self._changed("DELETE FROM meta WHERE key = ? AND value = ?", (key, value))


def _insert_secret(secret: SecretRecord) -> Step:
    return (
        "INSERT INTO shop_secrets (shop_id, kid, ciphertext, created_at) VALUES (?, ?, ?, ?)",
        (secret.shop_id, secret.kid, secret.ciphertext, secret.created_at),
    )


def _insert_till(till: TillRecord) -> Step:
    return (
        "INSERT INTO tills (till_id, shop_id, key_sha256, created_at, key_revision)"
        " VALUES (?, ?, ?, ?, ?)",
        (till.till_id, till.shop_id, till.key_sha256, till.created_at, till.key_revision),
    )
