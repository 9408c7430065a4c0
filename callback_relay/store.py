"""The relay's storage interface and the records that cross it.

Everything durable goes through `RelayStore`, so a PostgreSQL implementation can later let several
relay instances share one database; `SqliteStore` is the embedded default. Times are integer
milliseconds since the Unix epoch (UTC), read from the injectable clock by the caller.
Every inbox query is filtered by till and shop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from callback_relay.types import AppendOutcome, EventFlag, EventKind

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


class RelayStore(Protocol):
    """Durable registry and inbox. Writes are committed before the call returns."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call `callback(till_id)` when another process commits an event for that till."""
        ...

    async def check_writable(self) -> None:
        """Commit a tiny write, or raise StoreUnavailable: what `/healthz` reports."""
        ...

    def broker(self) -> BrokerStore:
        """The Daraja broker's tables in this same store (shared by every instance on it)."""
        ...

    # Registry.
    async def get_meta(self, key: str) -> bytes | None: ...

    async def set_meta_if_absent(self, key: str, value: bytes) -> bytes: ...

    async def registry_version(self) -> int: ...

    async def load_registry(self) -> RegistrySnapshot: ...

    async def get_shop(self, shop_id: str) -> ShopRecord | None: ...

    async def list_secrets(self, shop_id: str) -> tuple[SecretRecord, ...]: ...

    async def get_till(self, till_id: str) -> TillRecord | None: ...

    async def add_shop(self, shop: ShopRecord, secret: SecretRecord, till: TillRecord) -> None: ...

    async def add_till(self, till: TillRecord) -> None: ...

    async def revoke_till(self, till_id: str, now: int) -> bool: ...

    async def rekey_till(self, till_id: str, key_sha256: bytes, revision: int) -> bool:
        """Give a live till a new key hash and callback-key revision (the previous revision
        must be `revision - 1`); False if it is revoked or moved on meanwhile."""
        ...

    async def add_secret(self, secret: SecretRecord) -> None: ...

    async def retire_secret(self, shop_id: str, kid: str, now: int) -> bool: ...

    # Inbox.
    async def append(self, event: NewEvent) -> AppendResult: ...

    async def claim(
        self,
        shop_id: str,
        till_id: str,
        now: int,
        visibility_ms: int,
        max_deliveries: int,
        limit: int,
    ) -> Claim: ...

    async def ack(self, shop_id: str, till_id: str, event_id: int, now: int) -> AckResult: ...

    async def replay_dead(self, till_id: str | None, now: int) -> int: ...

    async def sweep(self, now: int, max_deliveries: int) -> int: ...

    async def prune(self, before: int) -> int:
        """Delete what retention lets go: events acknowledged before `before`, security events
        received before it (acknowledged or not), and every event of a till revoked before it."""
        ...

    async def inbox_stats(self) -> tuple[TillStats, ...]: ...

    # Audit checkpoints (one per till, the latest kept).
    async def get_checkpoint(self, till_id: str) -> Checkpoint | None: ...

    async def put_checkpoint(
        self, shop_id: str, till_id: str, seq: int, head: str, now: int
    ) -> CheckpointResult: ...

    # Batch reads.
    async def get_meta_many(self, keys: list[str]) -> dict[str, bytes]:
        """The values of those of `keys` that are set (absent keys are left out)."""
        ...

    async def set_meta_many_if_absent(self, items: list[tuple[str, bytes]]) -> dict[str, bytes]:
        """`set_meta_if_absent` for each (key, value), committed together: every key's value
        as stored afterwards."""
        ...

    async def delete_meta_if(self, key: str, value: bytes) -> bool:
        """Delete `key` only while its value is `value` (one atomic step): True when it was
        deleted, False when it is absent or holds another value (then nothing changed)."""
        ...
