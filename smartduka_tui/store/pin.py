"""The manager PIN: a scrypt hash with a random salt, and a lockout after wrong tries.

One PIN per till database opens the manager screens and the CLI commands that reveal or
change secrets or resolve payments. `MAX_WRONG_TRIES` wrong PINs in a row lock it for
`LOCKOUT` (read through the database's injectable clock, and kept in the database so a restart
does not unlock it). Every sign-in, failure, refusal while locked, change and reset is an
audit entry of no shop (the PIN is the till's), written in the transaction that records it.

The PIN itself never leaves this module: callers hand it over as a `Secret`, it is hashed in a
worker thread (scrypt is slow on purpose and must not stall the till's event loop), and only
the hash is stored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.db import Database, WriteTx
from smartduka_tui.store.errors import InputError
from smartduka_tui.store.records import Actor, from_ms, opt_from_ms
from smartduka_tui.store.secret import Secret

if TYPE_CHECKING:
    from smartduka_tui.store.store import Store

MAX_WRONG_TRIES = 5
LOCKOUT = timedelta(minutes=5)
PIN_DIGITS = (4, 12)
# scrypt cost: 16 MiB of memory and some tens of milliseconds per try, so a copied database
# does not give up a short PIN to a quick search. Stored with each hash so it can be raised.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_PIN_PATTERN = re.compile(r"^[0-9]+$")


class PinOutcome(StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    LOCKED = "locked"
    """Too many wrong tries: refused without looking at the PIN until `locked_until`."""
    NOT_SET = "not_set"


@dataclass(frozen=True, slots=True)
class PinCheck:
    """What one try gave. `tries_left` counts down to the lockout."""

    outcome: PinOutcome
    tries_left: int
    locked_until: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is PinOutcome.ACCEPTED

    def explain(self) -> str:
        """One line for a person (never repeats the PIN)."""
        if self.outcome is PinOutcome.ACCEPTED:
            return "Manager PIN accepted."
        if self.outcome is PinOutcome.NOT_SET:
            return "No manager PIN is set yet."
        if self.outcome is PinOutcome.LOCKED:
            until = self.locked_until.strftime("%H:%M:%S UTC") if self.locked_until else "later"
            return f"Too many wrong PINs: the manager PIN is locked until {until}."
        tries = "1 try" if self.tries_left == 1 else f"{self.tries_left} tries"
        return f"Wrong manager PIN: {tries} left before it locks for {_minutes(LOCKOUT)}."


@dataclass(frozen=True, slots=True)
class PinStatus:
    is_set: bool
    set_at: datetime | None = None
    failures: int = 0
    locked_until: datetime | None = None


def _minutes(span: timedelta) -> str:
    minutes = round(span.total_seconds() / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def validate_new_pin(pin: Secret) -> None:
    """InputError('pin', why) unless the PIN is 4 to 12 digits and not trivially guessed."""
    value = pin.reveal()
    low, high = PIN_DIGITS
    if not _PIN_PATTERN.fullmatch(value):
        raise InputError("pin", f"must be {low} to {high} digits (0-9) and nothing else")
    if not low <= len(value) <= high:
        raise InputError("pin", f"must be {low} to {high} digits, got {len(value)}")
    if len(set(value)) == 1:
        raise InputError("pin", "must not be one digit repeated: anyone would guess it")
    steps = {int(b) - int(a) for a, b in pairwise(value)}
    if steps in ({1}, {-1}):
        raise InputError("pin", "must not be a run of digits like 1234: anyone would guess it")


def hash_pin(pin: Secret, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) of the PIN with a fresh random salt."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = _scrypt(pin.reveal(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    )


def pin_matches(pin: Secret, stored: str) -> bool:
    """Whether `pin` gives `stored` (constant-time comparison of the hashes)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(pin.reveal(), base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=_HASH_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class ManagerPin:
    """The till's manager PIN over one database. `ManagerPin.of(store)` for the usual one."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        *,
        max_wrong_tries: int = MAX_WRONG_TRIES,
        lockout: timedelta = LOCKOUT,
    ) -> None:
        self._db = db
        self._audit = audit
        self.max_wrong_tries = max_wrong_tries
        self.lockout = lockout

    @classmethod
    def of(cls, store: Store) -> ManagerPin:
        return cls(store.db, store.audit)

    async def status(self) -> PinStatus:
        row = await self._db.fetchone("SELECT * FROM manager_pin WHERE singleton = 1")
        if row is None:
            return PinStatus(is_set=False)
        return PinStatus(
            is_set=True,
            set_at=from_ms(row["set_at"]),
            failures=row["failures"],
            locked_until=self._still_locked(row, self._db.clock.now()),
        )

    def _still_locked(self, row: Any, now: datetime) -> datetime | None:
        until = opt_from_ms(row["locked_until"])
        return until if until is not None and until > now else None

    async def verify(self, pin: Secret, *, purpose: str) -> PinCheck:
        """Check one try; a wrong one counts towards the lockout. `purpose` (what the PIN
        opens: "problem payments", "smartduka shop set") goes into the audit entry."""
        row = await self._db.fetchone("SELECT * FROM manager_pin WHERE singleton = 1")
        if row is None:
            return PinCheck(PinOutcome.NOT_SET, self.max_wrong_tries)
        if self._still_locked(row, self._db.clock.now()) is None:
            matched = await asyncio.to_thread(pin_matches, pin, row["pin_hash"])
        else:
            matched = False
        async with self._db.write() as tx:
            return await self._record_try(tx, matched, row["pin_hash"], purpose)

    async def _record_try(
        self, tx: WriteTx, matched: bool, checked_hash: str, purpose: str
    ) -> PinCheck:
        row = await tx.fetchone("SELECT * FROM manager_pin WHERE singleton = 1")
        if row is None:
            return PinCheck(PinOutcome.NOT_SET, self.max_wrong_tries)
        now = tx.clock.now()
        locked_until = self._still_locked(row, now)
        if locked_until is not None:
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action="manager.sign_in_refused",
                detail={"purpose": purpose, "locked_until": locked_until},
            )
            return PinCheck(PinOutcome.LOCKED, 0, locked_until)
        if matched and row["pin_hash"] == checked_hash:
            await tx.execute(
                "UPDATE manager_pin SET failures = 0, locked_until = NULL WHERE singleton = 1"
            )
            await self._audit.append(
                tx, actor=Actor.MANAGER, action="manager.sign_in", detail={"purpose": purpose}
            )
            return PinCheck(PinOutcome.ACCEPTED, self.max_wrong_tries)
        failures = int(row["failures"]) + 1
        await self._audit.append(
            tx,
            actor=Actor.MANAGER,
            action="manager.sign_in_failed",
            detail={"purpose": purpose, "failures": failures},
        )
        if failures < self.max_wrong_tries:
            await tx.execute(
                "UPDATE manager_pin SET failures = ?, locked_until = NULL WHERE singleton = 1",
                (failures,),
            )
            return PinCheck(PinOutcome.WRONG, self.max_wrong_tries - failures)
        # Locked: the count starts again when the lock ends, so the lock is what slows a guesser.
        until = now + self.lockout
        await tx.execute(
            "UPDATE manager_pin SET failures = 0, locked_until = ? WHERE singleton = 1",
            (tx.now_ms() + round(self.lockout.total_seconds() * 1000),),
        )
        await self._audit.append(
            tx,
            actor=Actor.MANAGER,
            action="manager.locked_out",
            detail={"purpose": purpose, "locked_until": until},
        )
        return PinCheck(PinOutcome.LOCKED, 0, until)

    async def set(self, new_pin: Secret, *, current_pin: Secret | None = None) -> PinCheck:
        """Set the PIN (first run) or change it (`current_pin` must then be right; a wrong one
        counts as a wrong try). InputError('pin', why) for a PIN too easy or malformed, and
        nothing changes. Returns the check of `current_pin` (ACCEPTED on first run)."""
        validate_new_pin(new_pin)
        status = await self.status()
        if status.is_set:
            if current_pin is None:
                raise InputError(
                    "current_pin", "a manager PIN is already set: give it to change the PIN"
                )
            check = await self.verify(current_pin, purpose="change the manager PIN")
            if not check.accepted:
                return check
        new_hash = await asyncio.to_thread(hash_pin, new_pin)
        async with self._db.write() as tx:
            existed = await tx.fetchone("SELECT 1 FROM manager_pin WHERE singleton = 1")
            if existed is None and status.is_set:
                raise InputError("current_pin", "the manager PIN was reset meanwhile; try again")
            if existed is not None and not status.is_set:
                raise InputError("pin", "a manager PIN was set meanwhile: give it to change it")
            await tx.execute(
                "INSERT INTO manager_pin (singleton, pin_hash, set_at, failures, locked_until)"
                " VALUES (1, ?, ?, 0, NULL) ON CONFLICT (singleton) DO UPDATE SET"
                " pin_hash = excluded.pin_hash, set_at = excluded.set_at, failures = 0,"
                " locked_until = NULL",
                (new_hash, tx.now_ms()),
            )
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action="manager.pin_changed" if status.is_set else "manager.pin_set",
            )
        return PinCheck(PinOutcome.ACCEPTED, self.max_wrong_tries)

    async def reset(self, *, reason: str) -> bool:
        """Forget the PIN and its lockout (a forgotten PIN; the caller has proved it holds the
        till's encryption key). Returns whether there was one."""
        async with self._db.write() as tx:
            removed = await tx.fetchall("DELETE FROM manager_pin WHERE singleton = 1 RETURNING 1")
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action="manager.pin_reset",
                detail={"reason": reason, "had_pin": bool(removed)},
            )
        return bool(removed)
