"""The append-only, hash-chained audit log.

Each entry's hash is SHA-256 over the previous entry's hash and a canonical JSON encoding of
the entry (id, time, shop, actor, action, attempt, detail). The previous hash is read inside
the same `BEGIN IMMEDIATE` transaction that appends, which is also the transaction of the
change the entry records. `audit_head` names the last entry, so removing the tail shows too.
Details are built by our code and refuse `Secret` values outright.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.records import Actor, AuditEntry, ChainReport, from_ms, to_ms
from smartduka_tui.store.secret import Secret

GENESIS_HASH = "0" * 64
_VERIFY_BATCH = 5000


def _json_default(value: object) -> Any:
    if isinstance(value, Secret):
        raise TypeError("a secret cannot be written to the audit log")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set | tuple):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    raise TypeError(f"{type(value).__name__} cannot be written to the audit log")


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, floats refused by our callers' types."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def entry_hash(
    entry_id: int,
    at_ms: int,
    shop_id: str | None,
    actor: str,
    action: str,
    attempt_id: int | None,
    detail_text: str,
    prev_hash: str,
) -> str:
    body = canonical_json([entry_id, at_ms, shop_id, actor, action, attempt_id, detail_text])
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=from_ms(row["at"]),
        shop_id=row["shop_id"],
        actor=Actor(row["actor"]),
        action=row["action"],
        attempt_id=row["attempt_id"],
        detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self,
        tx: WriteTx,
        *,
        actor: Actor,
        action: str,
        shop_id: str | None = None,
        attempt_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Add an entry inside `tx` (the transaction of the change it records)."""
        detail_text = canonical_json(dict(detail or {}))
        head = await tx.fetchone("SELECT last_id, last_hash FROM audit_head WHERE singleton = 1")
        entry_id = 1 if head is None else int(head["last_id"]) + 1
        prev_hash = GENESIS_HASH if head is None else str(head["last_hash"])
        at_ms = tx.now_ms()
        digest = entry_hash(
            entry_id, at_ms, shop_id, actor.value, action, attempt_id, detail_text, prev_hash
        )
        await tx.execute(
            "INSERT INTO audit_log (id, at, shop_id, actor, action, attempt_id, detail,"
            " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id,
                at_ms,
                shop_id,
                actor.value,
                action,
                attempt_id,
                detail_text,
                prev_hash,
                digest,
            ),
        )
        await tx.execute(
            "INSERT INTO audit_head (singleton, last_id, last_hash) VALUES (1, ?, ?)"
            " ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id,"
            " last_hash = excluded.last_hash",
            (entry_id, digest),
        )
        return AuditEntry(
            id=entry_id,
            at=from_ms(at_ms),
            shop_id=shop_id,
            actor=actor,
            action=action,
            attempt_id=attempt_id,
            detail=json.loads(detail_text),
            prev_hash=prev_hash,
            hash=digest,
        )

    async def entries(
        self,
        shop_id: str,
        *,
        attempt_id: int | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """A shop's entries, newest first (optionally one attempt's)."""
        sql = "SELECT * FROM audit_log WHERE shop_id = ?"
        params: list[Any] = [shop_id]
        if attempt_id is not None:
            sql += " AND attempt_id = ?"
            params.append(attempt_id)
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_entry(row) for row in await self._db.fetchall(sql, params)]

    async def system_entries(
        self, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Entries that belong to no shop (key rotation, for one), newest first."""
        sql = "SELECT * FROM audit_log WHERE shop_id IS NULL"
        params: list[Any] = []
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_entry(row) for row in await self._db.fetchall(sql, params)]

    async def search(
        self,
        shop_id: str,
        *,
        include_system: bool = False,
        actors: Collection[Actor] | None = None,
        action_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        attempt_id: int | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """The audit viewer's query: a shop's entries (with `include_system`, also those of no
        shop, like manager sign-ins), newest first, narrowed by each filter given. `since` is
        inclusive, `until` exclusive."""
        narrow: list[str] = []
        params: list[Any] = []
        if actors is not None:
            chosen = sorted(Actor(actor).value for actor in actors)
            narrow.append(f"actor IN ({', '.join('?' * len(chosen))})")
            params.extend(chosen)
        if action_prefix:
            narrow.append("substr(action, 1, ?) = ?")
            params.extend((len(action_prefix), action_prefix))
        if since is not None:
            narrow.append("at >= ?")
            params.append(to_ms(since))
        if until is not None:
            narrow.append("at < ?")
            params.append(to_ms(until))
        if attempt_id is not None:
            narrow.append("attempt_id = ?")
            params.append(attempt_id)
        if before_id is not None:
            narrow.append("id < ?")
            params.append(before_id)
        rest = "".join(f" AND {term}" for term in narrow)
        # One newest-first walk of audit_by_shop per owner, each stopping at `limit`; an OR of
        # the two owners would sort every matching entry instead.
        shop_part = (
            f"SELECT * FROM audit_log WHERE shop_id = ?{rest}"  # noqa: S608 - fixed fragments
            " ORDER BY id DESC LIMIT ?"
        )
        sql, args = shop_part, [shop_id, *params, limit]
        if include_system:
            system_part = shop_part.replace("shop_id = ?", "shop_id IS NULL", 1)
            sql = (
                f"SELECT * FROM (SELECT * FROM ({shop_part}) UNION ALL"  # noqa: S608 - as above
                f" SELECT * FROM ({system_part})) ORDER BY id DESC LIMIT ?"
            )
            args = [shop_id, *params, limit, *params, limit, limit]
        rows = await self._db.fetchall(sql, args)
        return [_entry(row) for row in rows]

    async def verify_chain(self) -> ChainReport:
        """Walk the whole chain; report intact, or the first entry that is altered, unlinked or
        missing. Entries appended while it runs are left for the next check."""
        head = await self._db.fetchone(
            "SELECT last_id, last_hash FROM audit_head WHERE singleton = 1"
        )
        if head is None:
            row = await self._db.fetchone("SELECT min(id) AS first FROM audit_log")
            if row is None or row["first"] is None:
                return ChainReport(intact=True, entries=0)
            return ChainReport(False, 0, int(row["first"]), "the chain's head record is missing")
        last_id, last_hash = int(head["last_id"]), str(head["last_hash"])
        expected_id, expected_prev, seen = 1, GENESIS_HASH, 0
        while expected_id <= last_id:
            rows = await self._db.fetchall(
                "SELECT * FROM audit_log WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
                (expected_id, last_id, _VERIFY_BATCH),
            )
            if not rows:
                break
            for row in rows:
                if row["id"] != expected_id:
                    return ChainReport(False, seen, expected_id, "this entry is missing")
                if row["prev_hash"] != expected_prev:
                    return ChainReport(
                        False, seen, expected_id, "it does not link to the entry before it"
                    )
                digest = entry_hash(
                    row["id"],
                    row["at"],
                    row["shop_id"],
                    row["actor"],
                    row["action"],
                    row["attempt_id"],
                    row["detail"],
                    row["prev_hash"],
                )
                if digest != row["hash"]:
                    return ChainReport(
                        False, seen, expected_id, "its content does not match its hash"
                    )
                expected_prev = row["hash"]
                expected_id += 1
                seen += 1
        if expected_id <= last_id:
            return ChainReport(False, seen, expected_id, "this entry is missing")
        if expected_prev != last_hash:
            return ChainReport(False, seen, last_id, "it differs from the chain's head record")
        return ChainReport(intact=True, entries=seen)
