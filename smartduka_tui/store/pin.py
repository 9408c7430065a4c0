"""The manager PIN: a peppered scrypt hash, bound to the vault key, and an escalating lockout.

One PIN per till database opens the manager screens and the CLI commands that reveal or
change secrets or resolve payments. The PIN is first MACed with a pepper derived from the vault
key (HKDF, store/vault.py), then hashed with scrypt and a random salt, and the stored record
carries a MAC of its own under the same pepper: a copy of the database without the key file
gives nothing to search offline, and a hash written into the database by hand is refused as
tampering (as is a PIN row deleted while the audit log says a PIN was set). `MAX_WRONG_TRIES`
wrong PINs in a row lock it for 5 minutes, then 15, 60, 240 and 1440 for each further lockout
until a right PIN (read through the database's injectable clock, and kept in the database so a
restart does not unlock it). Every sign-in, failure, refusal while locked, change and reset is
an audit entry of no shop (the PIN is the till's), written in the transaction that records it.
The lockout's counters carry a MAC under the same pepper that also covers the PIN record and the
id of the audit entry written with them: a count edited by hand, or an older row copied back
over a lockout, fails the check and the PIN stays shut until it is reset with the key.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from smartduka_tui.model import Actor, AuditAction
from smartduka_tui.store.audit import AuditKeys, AuditLog
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import InputError, KeyMissingError, TamperedPinError
from smartduka_tui.store.records import from_ms, opt_from_ms
from smartduka_tui.store.secret import Secret

if TYPE_CHECKING:
    from smartduka_tui.store.store import Store

MAX_WRONG_TRIES = 5
# Each lockout in a row lasts longer; the last step repeats.
LOCKOUT_STEPS = tuple(timedelta(minutes=m) for m in (5, 15, 60, 240, 1440))
LOCKOUT = LOCKOUT_STEPS[0]
PEPPER_PURPOSE = "manager pin pepper"
_SCHEME = "scrypt-hmac"
PIN_DIGITS = (4, 12)
# scrypt cost: 16 MiB of memory and some tens of milliseconds per try, so a copied database
# does not give up a short PIN to a quick search. Stored with each hash so it can be raised.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_PIN_PATTERN = re.compile(r"^[0-9]+$")
_COUNTERS_SCHEME = "pin-counters"
# The newest audit entry written with a change of the counters: its id is in their MAC.
_NEWEST_COUNTER_ENTRY = (
    "SELECT id FROM audit_log WHERE shop_id IS NULL AND action IN ('manager.sign_in',"
    " 'manager.sign_in_failed', 'manager.sign_in_refused', 'manager.locked_out',"
    " 'manager.pin_set', 'manager.pin_changed', 'manager.pin_counters_sealed')"
    " ORDER BY id DESC LIMIT 1"
)


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
    next_lockout: timedelta = LOCKOUT

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
        return f"Wrong manager PIN: {tries} left before it locks for {_minutes(self.next_lockout)}."


@dataclass(frozen=True, slots=True)
class PinStatus:
    is_set: bool
    set_at: datetime | None = None
    failures: int = 0
    locked_until: datetime | None = None
    lockouts: int = 0


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


def hash_pin(pin: Secret, pepper: bytes, kid: str, *, salt: bytes | None = None) -> str:
    """`scrypt-hmac$kid$N$r$p$salt$hash$tag` (base64): scrypt of HMAC(pepper, PIN) with a
    fresh random salt, and a MAC of the whole record under the pepper."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = _scrypt(_peppered(pin, pepper), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    fields = (_SCHEME, kid, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    return "$".join((*fields, _record_tag(pepper, fields)))


def pin_record_kid(stored: str) -> str:
    """The kid whose pepper a stored record needs; TamperedPinError for a record not of this
    scheme (an unpeppered hash written by hand, or by a version before the pepper)."""
    parts = stored.split("$")
    if len(parts) != 8 or parts[0] != _SCHEME:
        raise _tampered()
    return parts[1]


def pin_matches(pin: Secret, stored: str, pepper: bytes) -> bool:
    """Whether `pin` gives `stored` (constant-time); TamperedPinError when the record's own
    MAC fails, whatever the PIN tried."""
    parts = stored.split("$")
    if len(parts) != 8 or parts[0] != _SCHEME:
        raise _tampered()
    fields, tag = tuple(parts[:7]), parts[7]
    if not hmac.compare_digest(_record_tag(pepper, fields), tag):
        raise _tampered()
    _, _, n, r, p, salt, digest = fields
    try:
        expected = base64.b64decode(digest)
        actual = _scrypt(_peppered(pin, pepper), base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        raise _tampered() from None
    return hmac.compare_digest(actual, expected)


def _peppered(pin: Secret, pepper: bytes) -> bytes:
    return hmac.new(pepper, pin.reveal().encode(), hashlib.sha256).digest()


def _record_tag(pepper: bytes, fields: tuple[str, ...]) -> str:
    return _b64(hmac.new(pepper, "$".join(fields).encode(), hashlib.sha256).digest())


def counters_tag(
    pepper: bytes,
    pin_hash: str,
    failures: int,
    locked_until_ms: int | None,
    lockouts: int,
    audit_id: int,
) -> str:
    """The MAC of the lockout's counters, bound to the PIN record and to the audit entry that
    set them (so an older row put back is refused too)."""
    until = "" if locked_until_ms is None else str(locked_until_ms)
    fields = (_COUNTERS_SCHEME, pin_hash, str(failures), until, str(lockouts), str(audit_id))
    return _record_tag(pepper, fields)


def _counters_tampered() -> TamperedPinError:
    return TamperedPinError(
        "the manager PIN's count of wrong tries fails its check against this till's encryption "
        "key: the database was edited. The PIN stays locked; reset it with `smartduka manager "
        "reset-pin --yes` (that needs the key) and set a new one."
    )


def _tampered() -> TamperedPinError:
    return TamperedPinError(
        "the stored manager PIN fails its check against this till's encryption key: the "
        "database was edited (or restored with another keyring). No PIN can open it; reset it "
        "with `smartduka manager reset-pin --yes` (that needs the key) and set a new one."
    )


def _scrypt(pin: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=_HASH_BYTES
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class ManagerPin:
    """The till's manager PIN over one database. `ManagerPin.of(store)` for the usual one."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        keys: AuditKeys,
        *,
        max_wrong_tries: int = MAX_WRONG_TRIES,
        lockouts: Sequence[timedelta] = LOCKOUT_STEPS,
    ) -> None:
        self._db = db
        self._audit = audit
        self._keys = keys
        self.max_wrong_tries = max_wrong_tries
        self.lockouts = tuple(lockouts)

    @classmethod
    def of(cls, store: Store) -> ManagerPin:
        return cls(store.db, store.audit, store.credentials)

    def _lockout(self, earlier_lockouts: int) -> timedelta:
        return self.lockouts[min(earlier_lockouts, len(self.lockouts) - 1)]

    def _pepper(self, kid: str) -> bytes:
        return self._keys.derived_key(kid, PEPPER_PURPOSE)

    async def _row(self, reader: Reader, *, check_counters: bool = True) -> Any:
        """The PIN row; TamperedPinError if it is gone while the audit log says a PIN is set
        (deleting the row must not open every gate), or if its counters fail their MAC."""
        row = await reader.fetchone("SELECT * FROM manager_pin WHERE singleton = 1")
        if row is not None:
            if check_counters:
                await self._check_counters(row, reader)
            return row
        last = await reader.fetchone(
            "SELECT * FROM audit_log WHERE shop_id IS NULL AND action IN"
            " ('manager.pin_set', 'manager.pin_changed', 'manager.pin_reset')"
            " ORDER BY id DESC LIMIT 1"
        )
        if last is None:
            return None
        # A reset written in by hand (without the key's MAC) does not count as one.
        reset = last["action"] == AuditAction.MANAGER_PIN_RESET and await self._audit.is_genuine(
            last, reader
        )
        if not reset:
            raise TamperedPinError(
                "the manager PIN was removed from the database although the audit log says one "
                "is set: the database was edited. Reset it with `smartduka manager reset-pin "
                "--yes` (that needs the encryption key) and set a new one."
            )
        return None

    async def _check_counters(self, row: Any, reader: Reader) -> None:
        """TamperedPinError unless the counters carry their MAC, bound to the newest counter
        audit entry. A row without one is accepted only from before the MAC existed (no
        genuine 'sealed' entry yet); its next change seals it."""
        stored = str(row["pin_hash"])
        pepper = self._pepper(pin_record_kid(stored))
        last = await reader.fetchone(_NEWEST_COUNTER_ENTRY)
        tag = row["counters_tag"]
        if tag is None:
            if await self._sealed_entry(reader) is not None:
                raise _counters_tampered()
            return
        expected = counters_tag(
            pepper,
            stored,
            int(row["failures"]),
            row["locked_until"],
            int(row["lockouts"]),
            -1 if last is None else int(last["id"]),
        )
        if not hmac.compare_digest(expected, str(tag)):
            raise _counters_tampered()

    async def _sealed_entry(self, reader: Reader) -> Any:
        """The genuine audit entry saying the counters were first sealed, if any."""
        rows = await reader.fetchall(
            "SELECT * FROM audit_log WHERE shop_id IS NULL AND action = ?",
            (AuditAction.MANAGER_PIN_COUNTERS_SEALED,),
        )
        for row in rows:
            if await self._audit.is_genuine(row, reader):
                return row
        return None

    async def _store_counters(
        self,
        tx: WriteTx,
        pin_hash: str,
        failures: int,
        locked_until_ms: int | None,
        lockouts: int,
    ) -> None:
        """Write the counters and their MAC, bound to the newest counter audit entry, which
        the caller appended in this transaction (the first sealing says so in the log)."""
        if await self._sealed_entry(tx) is None:
            await self._audit.append(
                tx, actor=Actor.SYSTEM, action=AuditAction.MANAGER_PIN_COUNTERS_SEALED
            )
        last = await tx.fetchone(_NEWEST_COUNTER_ENTRY)
        assert last is not None, "the caller appends the entry first"
        pepper = self._pepper(pin_record_kid(pin_hash))
        tag = counters_tag(pepper, pin_hash, failures, locked_until_ms, lockouts, int(last["id"]))
        await tx.execute(
            "UPDATE manager_pin SET failures = ?, locked_until = ?, lockouts = ?,"
            " counters_tag = ? WHERE singleton = 1",
            (failures, locked_until_ms, lockouts, tag),
        )

    async def status(self) -> PinStatus:
        """The counters as stored, also without the key (`manager status`); a try checks
        their MAC (`verify`), so an edited count shows here but opens nothing."""
        row = await self._row(self._db, check_counters=False)
        if row is None:
            return PinStatus(is_set=False)
        return PinStatus(
            is_set=True,
            set_at=from_ms(row["set_at"]),
            failures=row["failures"],
            locked_until=self._still_locked(row, self._db.clock.now()),
            lockouts=row["lockouts"],
        )

    def _still_locked(self, row: Any, now: datetime) -> datetime | None:
        until = opt_from_ms(row["locked_until"])
        return until if until is not None and until > now else None

    async def verify(self, pin: Secret, *, purpose: str) -> PinCheck:
        """Check one try; a wrong one counts towards the lockout. `purpose` (what the PIN
        opens: "problem payments", "smartduka shop set") goes into the audit entry.
        TamperedPinError if the stored record was edited; KeyMissingError without the key."""
        row = await self._row(self._db)
        if row is None:
            return PinCheck(PinOutcome.NOT_SET, self.max_wrong_tries)
        stored = str(row["pin_hash"])
        pepper = self._pepper(pin_record_kid(stored))
        if self._still_locked(row, self._db.clock.now()) is None:
            matched = await asyncio.to_thread(pin_matches, pin, stored, pepper)
        else:
            matched = False
        async with self._db.write() as tx:
            return await self._record_try(tx, matched, stored, purpose)

    async def _record_try(
        self, tx: WriteTx, matched: bool, checked_hash: str, purpose: str
    ) -> PinCheck:
        row = await self._row(tx)
        if row is None:
            return PinCheck(PinOutcome.NOT_SET, self.max_wrong_tries)
        stored = str(row["pin_hash"])
        now = tx.clock.now()
        locked_until = self._still_locked(row, now)
        lockouts = int(row["lockouts"])
        if locked_until is not None:
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_SIGN_IN_REFUSED,
                detail={"purpose": purpose, "locked_until": locked_until},
            )
            # Same counters, bound to this newer entry (the MAC names the newest one).
            await self._store_counters(
                tx, stored, int(row["failures"]), row["locked_until"], lockouts
            )
            return PinCheck(PinOutcome.LOCKED, 0, locked_until, self._lockout(lockouts))
        if matched and stored == checked_hash:
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_SIGN_IN,
                detail={"purpose": purpose},
            )
            await self._store_counters(tx, stored, 0, None, 0)
            return PinCheck(PinOutcome.ACCEPTED, self.max_wrong_tries)
        failures = int(row["failures"]) + 1
        await self._audit.append(
            tx,
            actor=Actor.MANAGER,
            action=AuditAction.MANAGER_SIGN_IN_FAILED,
            detail={"purpose": purpose, "failures": failures},
        )
        lockout = self._lockout(lockouts)
        if failures < self.max_wrong_tries:
            await self._store_counters(tx, stored, failures, None, lockouts)
            return PinCheck(PinOutcome.WRONG, self.max_wrong_tries - failures, None, lockout)
        # Locked: the count starts again when the lock ends, and each lockout in a row (no
        # right PIN between) lasts longer, so a guesser gets fewer tries per day each time.
        until = now + lockout
        await self._audit.append(
            tx,
            actor=Actor.MANAGER,
            action=AuditAction.MANAGER_LOCKED_OUT,
            detail={"purpose": purpose, "locked_until": until, "lockouts": lockouts + 1},
        )
        until_ms = tx.now_ms() + round(lockout.total_seconds() * 1000)
        await self._store_counters(tx, stored, 0, until_ms, lockouts + 1)
        return PinCheck(PinOutcome.LOCKED, 0, until, self._lockout(lockouts + 1))

    async def set(self, new_pin: Secret, *, current_pin: Secret | None = None) -> PinCheck:
        """Set the PIN (first run) or change it (`current_pin` must then be right; a wrong one
        counts as a wrong try). InputError('pin', why) for a PIN too easy or malformed, and
        nothing changes. Returns the check of `current_pin` (ACCEPTED on first run)."""
        validate_new_pin(new_pin)
        kid = self._keys.active_kid
        if kid is None:
            raise KeyMissingError(
                "setting the manager PIN needs the encryption key (the PIN is peppered with "
                "it). Create a keyring with `smartduka keys init`, or set "
                "SMARTDUKA_ENCRYPTION_KEY."
            )
        status = await self.status()
        if status.is_set:
            if current_pin is None:
                raise InputError(
                    "current_pin", "a manager PIN is already set: give it to change the PIN"
                )
            check = await self.verify(current_pin, purpose="change the manager PIN")
            if not check.accepted:
                return check
        new_hash = await asyncio.to_thread(hash_pin, new_pin, self._pepper(kid), kid)
        async with self._db.write() as tx:
            existed = await tx.fetchone("SELECT 1 FROM manager_pin WHERE singleton = 1")
            if existed is None and status.is_set:
                raise InputError("current_pin", "the manager PIN was reset meanwhile; try again")
            if existed is not None and not status.is_set:
                raise InputError("pin", "a manager PIN was set meanwhile: give it to change it")
            await tx.execute(
                "INSERT INTO manager_pin (singleton, pin_hash, set_at, failures, locked_until,"
                " lockouts) VALUES (1, ?, ?, 0, NULL, 0) ON CONFLICT (singleton) DO UPDATE SET"
                " pin_hash = excluded.pin_hash, set_at = excluded.set_at, failures = 0,"
                " locked_until = NULL, lockouts = 0, counters_tag = NULL",
                (new_hash, tx.now_ms()),
            )
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_PIN_CHANGED
                if status.is_set
                else AuditAction.MANAGER_PIN_SET,
            )
            await self._store_counters(tx, new_hash, 0, None, 0)
        return PinCheck(PinOutcome.ACCEPTED, self.max_wrong_tries)

    async def reset(self, *, reason: str) -> bool:
        """Forget the PIN and its lockout (a forgotten PIN, or one found tampered; the caller
        has proved it holds the till's encryption key). Returns whether there was one."""
        async with self._db.write() as tx:
            removed = await tx.fetchall("DELETE FROM manager_pin WHERE singleton = 1 RETURNING 1")
            await self._audit.append(
                tx,
                actor=Actor.MANAGER,
                action=AuditAction.MANAGER_PIN_RESET,
                detail={"reason": reason, "had_pin": bool(removed)},
            )
        return bool(removed)
