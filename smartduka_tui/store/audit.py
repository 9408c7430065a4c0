"""The append-only audit log, chained by a MAC under a key derived from the vault key.

Each entry's hash is HMAC-SHA256, under the audit key of the entry's kid (HKDF from that vault
key, store/vault.py), over the previous entry's hash and a canonical JSON encoding of the entry
(id, time, shop, actor, action, attempt, detail). Someone who edits the database file without
the key can neither fix an edited entry's hash nor rewrite the chain: `verify_chain` tells an
edited entry from a rewritten chain (recomputed hashes that do not carry the key). A truncated
tail with its head record put back shows only against a head kept elsewhere: the relay's
checkpoint (relay_client.py posts it after each acknowledgement batch).

Entries written before the chain was keyed, or by a store opened without a key, have kid NULL
and a plain SHA-256 hash; once a keyed entry exists every later one must be keyed. The previous
hash is read inside the same `BEGIN IMMEDIATE` transaction that appends, which is also the
transaction of the change the entry records. Details are built by our code and refuse `Secret`
values outright.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import KeyMissingError
from smartduka_tui.store.records import (
    AuditEntry,
    ChainCheckpoint,
    ChainReport,
    ChainState,
    from_ms,
    row_reader,
    to_ms,
)
from smartduka_tui.store.secret import Secret

AUDIT_KEY_PURPOSE = "audit chain"


class AuditKeys(Protocol):
    """Where the audit log gets its MAC keys (the store's Credentials)."""

    @property
    def active_kid(self) -> str | None: ...

    def derived_key(self, kid: str, purpose: str) -> bytes: ...


GENESIS_HASH = "0" * 64
_VERIFY_BATCH = 5000
_MOVE_HEAD = (
    "INSERT INTO audit_head (singleton, last_id, last_hash) VALUES (1, ?, ?)"
    " ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id,"
    " last_hash = excluded.last_hash"
)


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
    mac_key: bytes | None = None,
) -> str:
    """The entry's hash: HMAC-SHA256 under `mac_key`, or plain SHA-256 for an unkeyed one."""
    body = canonical_json([entry_id, at_ms, shop_id, actor, action, attempt_id, detail_text])
    message = f"{prev_hash}\n{body}".encode()
    if mac_key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(mac_key, message, hashlib.sha256).hexdigest()


def _stored_hash(row: Any, mac_key: bytes | None) -> str:
    """The hash a stored entry carries when it is genuine under `mac_key`."""
    return entry_hash(
        int(row["id"]),
        row["at"],
        row["shop_id"],
        row["actor"],
        row["action"],
        row["attempt_id"],
        row["detail"],
        row["prev_hash"],
        mac_key,
    )


_entry = row_reader(AuditEntry)


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An entry not yet written (`AuditLog.append_many` chains a batch of them)."""

    actor: Actor
    action: AuditAction
    shop_id: str | None
    detail: Mapping[str, Any]
    attempt_id: int | None = None


@dataclass(frozen=True, slots=True)
class _Link:
    """A draft's place in the chain: its id, canonical detail, previous hash and hash."""

    id: int
    detail: str
    prev_hash: str
    hash: str


class AuditLog:
    def __init__(self, db: Database, keys: AuditKeys) -> None:
        self._db = db
        self._keys = keys

    def _mac_key(self, kid: str | None) -> bytes | None:
        return None if kid is None else self._keys.derived_key(kid, AUDIT_KEY_PURPOSE)

    async def append(
        self,
        tx: WriteTx,
        *,
        actor: Actor,
        action: AuditAction,
        shop_id: str | None = None,
        attempt_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Add an entry inside `tx` (the transaction of the change it records)."""
        draft = AuditDraft(actor, action, shop_id, detail or {}, attempt_id)
        [link], kid, at_ms = await self._chain(tx, [draft])
        await tx.execute(
            "INSERT INTO audit_log (id, at, shop_id, actor, action, attempt_id, detail,"
            " prev_hash, hash, kid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                link.id,
                at_ms,
                shop_id,
                actor.value,
                action,
                attempt_id,
                link.detail,
                link.prev_hash,
                link.hash,
                kid,
            ),
        )
        await tx.execute(_MOVE_HEAD, (link.id, link.hash))
        return AuditEntry(
            id=link.id,
            at=from_ms(at_ms),
            shop_id=shop_id,
            actor=actor,
            action=action,
            attempt_id=attempt_id,
            detail=json.loads(link.detail),
            prev_hash=link.prev_hash,
            hash=link.hash,
        )

    async def _chain(
        self, tx: WriteTx, drafts: Sequence[AuditDraft]
    ) -> tuple[list[_Link], str | None, int]:
        """Each draft's link after the chain's head, in order, all at this moment, keyed with
        the kid `_head` gives; and that kid and moment."""
        head, kid = await self._head(tx)
        entry_id = 1 if head is None else int(head["last_id"]) + 1
        prev_hash = GENESIS_HASH if head is None else str(head["last_hash"])
        at_ms = tx.now_ms()
        mac_key = self._mac_key(kid)
        links: list[_Link] = []
        for draft in drafts:
            detail_text = canonical_json(dict(draft.detail))
            digest = entry_hash(
                entry_id,
                at_ms,
                draft.shop_id,
                draft.actor.value,
                draft.action,
                draft.attempt_id,
                detail_text,
                prev_hash,
                mac_key,
            )
            links.append(_Link(entry_id, detail_text, prev_hash, digest))
            entry_id, prev_hash = entry_id + 1, digest
        return links, kid, at_ms

    async def _head(self, tx: WriteTx) -> tuple[Any, str | None]:
        """The chain's head row (None when empty) and the kid new entries are keyed with;
        KeyMissingError when the log is keyed and this store has no key."""
        head = await tx.fetchone("SELECT last_id, last_hash FROM audit_head WHERE singleton = 1")
        kid = self._keys.active_kid
        if kid is None and head is not None:
            last = await tx.fetchone("SELECT kid FROM audit_log WHERE id = ?", (head["last_id"],))
            if last is not None and last["kid"] is not None:
                raise KeyMissingError(
                    "the audit log is keyed, so changes need the encryption key, and the store "
                    "was opened without one. Create a keyring with `smartduka keys init`, or "
                    "set SMARTDUKA_ENCRYPTION_KEY."
                )
        return head, kid

    async def append_many(self, tx: WriteTx, drafts: Sequence[AuditDraft]) -> list[int]:
        """Add one entry per draft, in order, inside `tx`: the same chain `append` writes one
        at a time, in three statements however many (a pull fills hundreds of receipts).
        Returns the entries' ids."""
        if not drafts:
            return []
        links, kid, at_ms = await self._chain(tx, drafts)
        rows = [
            [
                link.id,
                draft.shop_id,
                draft.actor.value,
                str(draft.action),
                draft.attempt_id,
                link.detail,
                link.prev_hash,
                link.hash,
            ]
            for draft, link in zip(drafts, links, strict=True)
        ]
        await tx.execute(
            "INSERT INTO audit_log (id, at, shop_id, actor, action, attempt_id, detail,"
            " prev_hash, hash, kid) SELECT value ->> 0, ?, value ->> 1, value ->> 2,"
            " value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, ?"
            " FROM json_each(?) ORDER BY key",
            (at_ms, kid, json.dumps(rows)),
        )
        await tx.execute(_MOVE_HEAD, (links[-1].id, links[-1].hash))
        return [link.id for link in links]

    async def entries(
        self,
        shop_id: str,
        *,
        attempt_id: int | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """A shop's entries, newest first (optionally one attempt's)."""
        return await self.search(shop_id, attempt_id=attempt_id, limit=limit, before_id=before_id)

    async def system_entries(
        self, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        """Entries that belong to no shop (key rotation, for one), newest first."""
        return await self.search(None, limit=limit, before_id=before_id)

    async def search(
        self,
        shop_id: str | None,
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
        shop, like manager sign-ins; with shop None, only those), newest first, narrowed by
        each filter given. `since` is inclusive, `until` exclusive."""
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
        owner, first = ("shop_id IS NULL", []) if shop_id is None else ("shop_id = ?", [shop_id])
        shop_part = (
            f"SELECT * FROM audit_log WHERE {owner}{rest}"  # noqa: S608 - fixed fragments
            " ORDER BY id DESC LIMIT ?"
        )
        sql, args = shop_part, [*first, *params, limit]
        if include_system and shop_id is not None:
            system_part = shop_part.replace("shop_id = ?", "shop_id IS NULL", 1)
            sql = (
                f"SELECT * FROM (SELECT * FROM ({shop_part}) UNION ALL"  # noqa: S608 - as above
                f" SELECT * FROM ({system_part})) ORDER BY id DESC LIMIT ?"
            )
            args = [shop_id, *params, limit, *params, limit, limit]
        rows = await self._db.fetchall(sql, args)
        return [_entry(row) for row in rows]

    async def is_genuine(self, row: Any, reader: Reader) -> bool:
        """Whether one stored entry carries a hash this till made: its MAC under its kid, or,
        for an unkeyed one, its plain hash while no keyed entry comes before it (a gate that
        trusts one entry, such as the PIN reset, must not trust a forged one)."""
        kid = row["kid"]
        if kid is None:
            keyed = await reader.fetchone(
                "SELECT 1 FROM audit_log WHERE id < ? AND kid IS NOT NULL LIMIT 1", (row["id"],)
            )
            if keyed is not None:
                return False
        return hmac.compare_digest(_stored_hash(row, self._mac_key(kid)), str(row["hash"]))

    async def head(self) -> ChainCheckpoint | None:
        """The chain's last entry as a checkpoint to keep elsewhere (None for an empty log)."""
        row = await self._db.fetchone(
            "SELECT last_id, last_hash FROM audit_head WHERE singleton = 1"
        )
        return None if row is None else ChainCheckpoint(int(row["last_id"]), str(row["last_hash"]))

    async def verify_chain(self, checkpoint: ChainCheckpoint | None = None) -> ChainReport:
        """Walk the whole chain and say whether it is intact, edited, truncated or rewritten,
        naming the first entry concerned. `checkpoint`, a head kept off the till (the relay's),
        catches a truncation or rewrite that also put the head record back in step. Entries
        appended while it runs are left for the next check."""
        head = await self._db.fetchone(
            "SELECT last_id, last_hash FROM audit_head WHERE singleton = 1"
        )
        walk = _Walk(self._mac_key, checkpoint)
        # Without a head record, walk whatever is there.
        upper = (1 << 62) if head is None else int(head["last_id"])
        next_id = 1
        while True:
            rows = await self._db.fetchall(
                "SELECT * FROM audit_log WHERE id >= ? AND id <= ? ORDER BY id LIMIT ?",
                (next_id, upper, _VERIFY_BATCH),
            )
            if not rows:
                break
            for row in rows:
                walk.check(row)
            next_id = int(rows[-1]["id"]) + 1
        return walk.report(head)


@dataclass(frozen=True, slots=True)
class _Finding:
    entry_id: int
    reason: str
    state: ChainState
    intact_before: int


class _Walk:
    """One verify pass: what each entry showed, in order, then the verdict."""

    def __init__(
        self, mac_key: Callable[[str | None], bytes | None], checkpoint: ChainCheckpoint | None
    ) -> None:
        self._mac_key = mac_key
        self._checkpoint = checkpoint
        self._checkpoint_hash: str | None = None
        self._checkpoint_before = 0
        self.expected_id = 1
        self.prev_hash = GENESIS_HASH
        self.seen = 0
        self.unkeyed = 0
        self.keyed_seen = False
        self.first_problem: _Finding | None = None
        # A run of entries to the end whose MACs all fail while each links to the one before:
        # the mark of a chain recomputed by someone without the key.
        self.bad_run: _Finding | None = None
        self.bad_run_linked = False

    def _problem(self, entry_id: int, reason: str) -> None:
        if self.first_problem is None:
            self.first_problem = _Finding(entry_id, reason, ChainState.EDITED, self.seen)

    def check(self, row: Any) -> None:
        entry_id = int(row["id"])
        linked = entry_id == self.expected_id and row["prev_hash"] == self.prev_hash
        if entry_id != self.expected_id:
            self._problem(self.expected_id, "this entry is missing")
        elif not linked:
            self._problem(entry_id, "it does not link to the entry before it")
        kid = row["kid"]
        if kid is None and self.keyed_seen:
            self._problem(entry_id, "it was written without the key after the chain was keyed")
            valid = False
        else:
            self.keyed_seen = self.keyed_seen or kid is not None
            valid = hmac.compare_digest(_stored_hash(row, self._mac_key(kid)), str(row["hash"]))
            if not valid:
                self._problem(entry_id, "its content does not match its hash")
        if valid:
            self.bad_run = None
            self.unkeyed += int(kid is None)
        elif self.bad_run is None:
            self.bad_run = _Finding(entry_id, "", ChainState.REWRITTEN, self.seen)
            self.bad_run_linked = True
        else:
            self.bad_run_linked = self.bad_run_linked and linked
        if self._checkpoint is not None and entry_id == self._checkpoint.seq:
            self._checkpoint_hash, self._checkpoint_before = str(row["hash"]), self.seen
        self.prev_hash = str(row["hash"])
        self.expected_id = entry_id + 1
        self.seen += 1

    def report(self, head: Any) -> ChainReport:
        last_seen = self.expected_id - 1
        run = self.bad_run
        if run is not None and self.bad_run_linked and last_seen > run.entry_id:
            whole = "the whole log" if run.entry_id == 1 else "the log from this entry on"
            return self._broken(
                run.entry_id,
                f"{whole} was rewritten by someone without this till's key: none of those "
                "entries carries the key's MAC",
                ChainState.REWRITTEN,
                run.intact_before,
            )
        found = self.first_problem
        if found is not None:
            return self._broken(found.entry_id, found.reason, found.state, found.intact_before)
        if head is None:
            if self.seen:
                return self._broken(1, "the chain's head record is missing", ChainState.EDITED, 0)
        elif last_seen < int(head["last_id"]):
            return self._broken(
                last_seen + 1,
                f"this entry is missing: entries {last_seen + 1} to {head['last_id']} are "
                "gone from the end of the log",
                ChainState.TRUNCATED,
                self.seen,
            )
        elif self.prev_hash != str(head["last_hash"]):
            return self._broken(
                last_seen,
                "it differs from the chain's head record",
                ChainState.EDITED,
                self.seen - 1,
            )
        checkpoint = self._checkpoint
        if checkpoint is not None and checkpoint.seq > last_seen:
            return self._broken(
                last_seen + 1,
                f"the log ends at entry {last_seen}, but the relay holds a checkpoint of "
                f"entry {checkpoint.seq}: the tail was cut off",
                ChainState.TRUNCATED,
                self.seen,
            )
        if checkpoint is not None and not hmac.compare_digest(
            self._checkpoint_hash or "", checkpoint.head
        ):
            return self._broken(
                checkpoint.seq,
                "it differs from the relay's checkpoint of it: the log was rewritten",
                ChainState.REWRITTEN,
                self._checkpoint_before,
            )
        return ChainReport(
            intact=True, entries=self.seen, unkeyed=self.unkeyed, checkpoint=checkpoint
        )

    def _broken(
        self, entry_id: int, reason: str, state: ChainState, intact_before: int
    ) -> ChainReport:
        return ChainReport(
            False, intact_before, entry_id, reason, state, self.unkeyed, self._checkpoint
        )
