"""Payment attempts: written before the STK push, moved only by compare-and-set transitions.

Every write takes the caller's transaction and appends its audit entry in it, so an attempt's
change and its record commit together or not at all. Every query names the shop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from smartduka_tui.model import LIVE, Actor, AttemptFlag, AttemptState, AuditAction, ConfirmingClaim
from smartduka_tui.store.audit import AuditDraft, AuditLog
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import (
    AttemptInputError,
    IdempotencyKeyExistsError,
    InvalidTransitionError,
    NotFoundError,
    PhoneBusyError,
)
from smartduka_tui.store.records import (
    ID_PATTERN,
    Attempt,
    AttemptFilter,
    NewAttempt,
    Page,
    PageCursor,
    Summary,
    TransitionResult,
    created_between,
    row_reader,
    to_ms,
)

MIN_AMOUNT = 1
MAX_AMOUNT = 250_000
PHONE_PATTERN = re.compile(r"^254[17][0-9]{8}$")
_PRINTABLE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

# These SQL terms repeat the WHERE of the partial indexes in migrations.py exactly, so that
# SQLite can use those indexes; tests check the query plans.
LIVE_SQL = "state IN ('CREATED', 'PENDING', 'UNKNOWN')"
PROBLEM_SQL = "(state IN ('FAILED', 'EXPIRED', 'NEEDS_REVIEW', 'UNKNOWN') OR (flags & 15) != 0)"

# Fields a transition may set, with how each is stored.
_TIME_FIELDS = frozenset({"push_sent_at", "completed_at", "expires_at"})
_TEXT_FIELDS = frozenset(
    {
        "merchant_request_id",
        "checkout_request_id",
        "result_code",
        "result_desc",
        "receipt_number",
        "review_reason",
        "review_note",
    }
)
TRANSITION_FIELDS = _TIME_FIELDS | _TEXT_FIELDS


attempt_from_row = row_reader(Attempt)


def attempt_conditions(
    shop_id: str, filters: AttemptFilter, *, problems_only: bool
) -> tuple[list[str], list[Any]]:
    """The WHERE conditions, with their parameters, that pick a shop's attempts under
    `filters` (only those on the problem list with `problems_only`)."""
    where = ["shop_id = ?"]
    params: list[Any] = [shop_id]
    if problems_only:
        where.append(PROBLEM_SQL)
    if not filters.include_resolved:
        where.append(f"(flags & {int(AttemptFlag.RESOLVED_BY_MANAGER)}) = 0")
    created_between(where, params, filters.since, filters.until)
    if filters.states is not None:
        states = sorted(AttemptState(s).value for s in filters.states)
        where.append(f"state IN ({', '.join('?' * len(states))})")
        params.extend(states)
    if filters.any_of is not None:
        wanted = sorted(AttemptState(s).value for s in filters.any_of.states)
        either = [f"state IN ({', '.join('?' * len(wanted))})"] if wanted else []
        if filters.any_of.flags:
            either.append(f"(flags & {int(filters.any_of.flags)}) != 0")
        where.append(f"({' OR '.join(either) or '0'})")
        params.extend(wanted)
    if filters.result_codes is not None:
        codes = sorted(filters.result_codes)
        where.append(f"result_code IN ({', '.join('?' * len(codes))})")
        params.extend(codes)
    if filters.phone is not None:
        where.append("phone = ?")
        params.append(filters.phone)
    if filters.till_id is not None:
        where.append("till_id = ?")
        params.append(filters.till_id)
    return where, params


def validate_new_attempt(new: NewAttempt) -> None:
    """AttemptInputError naming the first field that is wrong."""
    if not isinstance(new.shop_id, str) or not ID_PATTERN.fullmatch(new.shop_id):
        raise AttemptInputError("shop_id", "must be 1 to 64 letters, digits, '-' or '_'")
    if not isinstance(new.till_id, str) or not ID_PATTERN.fullmatch(new.till_id):
        raise AttemptInputError("till_id", "must be 1 to 64 letters, digits, '-' or '_'")
    sale_ref = new.sale_ref
    if not isinstance(sale_ref, str) or not sale_ref.strip() or len(sale_ref) > 64:
        raise AttemptInputError("sale_ref", "must be 1 to 64 characters")
    if any(not ch.isprintable() for ch in sale_ref):
        raise AttemptInputError("sale_ref", "must not contain control characters")
    amount = new.amount
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise AttemptInputError("amount", "must be a whole number of shillings")
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise AttemptInputError(
            "amount", f"must be between {MIN_AMOUNT} and {MAX_AMOUNT:,} shillings, got {amount:,}"
        )
    if not isinstance(new.phone, str) or not PHONE_PATTERN.fullmatch(new.phone):
        raise AttemptInputError(
            "phone", "must be a normalised Kenyan mobile number, 2547XXXXXXXX or 2541XXXXXXXX"
        )
    if not isinstance(new.idempotency_key, str) or not _PRINTABLE_ID.fullmatch(new.idempotency_key):
        raise AttemptInputError(
            "idempotency_key", "must be 1 to 128 printable characters without spaces"
        )
    if not isinstance(new.attempt_ref, str) or not ID_PATTERN.fullmatch(new.attempt_ref):
        raise AttemptInputError("attempt_ref", "must be 1 to 64 letters, digits, '-' or '_'")
    if not isinstance(new.expires_at, datetime) or new.expires_at.tzinfo is None:
        raise AttemptInputError("expires_at", "must be a timezone-aware datetime")


def resolution_note(note: str) -> str:
    """A manager's note on what was done about a problem, stripped; AttemptInputError if empty
    or over 500 characters."""
    note = note.strip() if isinstance(note, str) else ""
    if not note or len(note) > 500:
        raise AttemptInputError("note", "must be 1 to 500 characters saying what was done")
    return note


def _field_value(name: str, value: Any) -> int | str | None:
    if value is None:
        return None
    if name in _TIME_FIELDS:
        if not isinstance(value, datetime):
            raise TypeError(f"{name} must be a datetime")
        return to_ms(value)
    if name == "result_code" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # Daraja sends 0 and "0" alike; codes can also be words
    if not isinstance(value, str):
        raise TypeError(f"{name} must be text")
    return value


def _audit_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class Attempts:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    # --- writes ---------------------------------------------------------------------------

    async def create(
        self, tx: WriteTx, new: NewAttempt, *, actor: Actor = Actor.CASHIER
    ) -> Attempt:
        """Write a new attempt in CREATED (its attempt number the next for the sale).

        IdempotencyKeyExistsError if the key is taken (with that attempt); PhoneBusyError if the
        phone has a live attempt on this till; AttemptInputError for a bad value; NotFoundError
        if the till is not this shop's.
        """
        validate_new_attempt(new)
        values = {**asdict(new), "expires_at": to_ms(new.expires_at)}
        # Every precondition in one statement (one round trip to the database thread).
        facts = await tx.fetchone(
            "SELECT"  # noqa: S608 - LIVE_SQL is a constant
            " (SELECT 1 FROM tills WHERE shop_id = :shop_id AND id = :till_id) AS till_ok,"
            " (SELECT id FROM attempts WHERE shop_id = :shop_id"
            "   AND idempotency_key = :idempotency_key) AS same_key,"
            f" (SELECT id FROM attempts WHERE shop_id = :shop_id AND till_id = :till_id"
            f"   AND phone = :phone AND {LIVE_SQL}) AS live,"
            " (SELECT 1 FROM attempts WHERE shop_id = :shop_id AND attempt_ref = :attempt_ref)"
            "   AS ref_used,"
            " (SELECT coalesce(max(attempt_number), 0) + 1 FROM attempts"
            "   WHERE shop_id = :shop_id AND sale_ref = :sale_ref) AS number",
            values,
        )
        if facts is None or facts["till_ok"] is None:
            raise NotFoundError(f"till {new.till_id!r} is not enrolled for shop {new.shop_id!r}")
        if facts["same_key"] is not None:
            raise IdempotencyKeyExistsError(await self._require(new.shop_id, facts["same_key"], tx))
        if facts["live"] is not None:
            raise PhoneBusyError(await self._require(new.shop_id, facts["live"], tx))
        if facts["ref_used"] is not None:
            raise AttemptInputError("attempt_ref", "is already used by another attempt")
        number = int(facts["number"])
        created = await tx.fetchone(
            "INSERT INTO attempts (shop_id, till_id, sale_ref, amount, phone, idempotency_key,"
            " attempt_ref, attempt_number, state, created_at, expires_at, updated_at)"
            " VALUES (:shop_id, :till_id, :sale_ref, :amount, :phone, :idempotency_key,"
            " :attempt_ref, :number, 'CREATED', :now, :expires_at, :now) RETURNING *",
            {**values, "number": number, "now": tx.now_ms()},
        )
        if created is None:
            raise RuntimeError("INSERT ... RETURNING gave no row")
        attempt = attempt_from_row(created)
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.ATTEMPT_CREATED,
            shop_id=new.shop_id,
            attempt_id=attempt.id,
            detail={
                "till_id": new.till_id,
                "sale_ref": new.sale_ref,
                "amount": new.amount,
                "phone": new.phone,
                "attempt_number": number,
            },
        )
        return attempt

    async def transition(
        self,
        tx: WriteTx,
        shop_id: str,
        attempt_id: int,
        expected: Collection[AttemptState],
        new_state: AttemptState,
        cause: Actor,
        *,
        add_flags: AttemptFlag = AttemptFlag.NONE,
        clear_flags: AttemptFlag = AttemptFlag.NONE,
        detail: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> TransitionResult:
        """Move an attempt to `new_state` if, and only if, it is now in one of `expected`
        (compare-and-set), setting `fields` (see TRANSITION_FIELDS), adding `add_flags` and
        removing `clear_flags`, recording the previous state and appending the audit entry,
        all in `tx`.

        Returns applied=False (nothing written) when the state is not one expected. Leaving
        COMPLETED raises InvalidTransitionError. `new_state` equal to the current state
        updates fields without a state change. Entering COMPLETED sets completed_at (now)
        unless given; entering any final state sets finished_at; entering COMPLETED or
        NEEDS_REVIEW ends a confirmation in progress (nothing is left to confirm).
        """
        unknown = set(fields) - TRANSITION_FIELDS
        if unknown:
            raise TypeError(f"transition cannot set {', '.join(sorted(unknown))}")
        current = await self.get(shop_id, attempt_id, tx=tx)
        if current is None:
            raise NotFoundError(f"there is no attempt {attempt_id} for shop {shop_id!r}")
        if current.state not in expected:
            return TransitionResult(applied=False, attempt=current)
        if current.state is AttemptState.COMPLETED and new_state is not AttemptState.COMPLETED:
            raise InvalidTransitionError(attempt_id, current.state, new_state)
        values = {name: _field_value(name, value) for name, value in fields.items()}
        if (
            new_state is AttemptState.COMPLETED
            and current.completed_at is None
            and values.get("completed_at") is None
        ):
            values["completed_at"] = tx.now_ms()
        state_changes = new_state is not current.state
        assignments = ["state = ?", "updated_at = ?", "flags = (flags | ?) & ~?"]
        params: list[Any] = [new_state.value, tx.now_ms(), int(add_flags), int(clear_flags)]
        if state_changes:
            assignments.append("previous_state = ?")
            params.append(current.state.value)
            if new_state not in LIVE:
                assignments.append("finished_at = ?")
                params.append(tx.now_ms())
            if new_state in (AttemptState.COMPLETED, AttemptState.NEEDS_REVIEW):
                assignments.append(
                    "confirming = NULL, confirming_code = NULL, confirming_receipt = NULL"
                )
        for name, value in values.items():
            assignments.append(f"{name} = ?")
            params.append(value)
        checkout_id = values.get("checkout_request_id")
        if isinstance(checkout_id, str):
            holder = await self.by_checkout_request_id(shop_id, checkout_id, tx=tx)
            if holder is not None and holder.id != attempt_id:
                raise AttemptInputError(
                    "checkout_request_id", f"already belongs to attempt {holder.id}"
                )
        updated = await self._update(
            tx,
            shop_id,
            attempt_id,
            ", ".join(assignments),
            params,
            actor=cause,
            action=AuditAction.ATTEMPT_TRANSITION if state_changes else AuditAction.ATTEMPT_UPDATED,
            detail={
                "from": current.state.value,
                "to": new_state.value,
                "fields": {name: _audit_value(value) for name, value in fields.items()},
                "flags_added": [flag.name for flag in AttemptFlag if flag & add_flags and flag],
                **(
                    {"flags_cleared": [f.name for f in AttemptFlag if f & clear_flags and f]}
                    if clear_flags
                    else {}
                ),
                **(dict(detail) if detail else {}),
            },
        )
        return TransitionResult(applied=True, attempt=updated)

    async def fill_receipts(
        self,
        tx: WriteTx,
        shop_id: str,
        found: Sequence[tuple[int, str, Mapping[str, Any]]],
        cause: Actor = Actor.SYSTEM,
    ) -> list[Attempt]:
        """Paid attempts without a receipt get one: (attempt id, receipt, audit detail) each,
        in one UPDATE and one batch of audit entries (what `transition` COMPLETED ->
        COMPLETED with `receipt_number` and RECEIPT_PENDING cleared writes for each). An
        attempt that is no longer paid and receipt-less is left as it is; returns those
        filled, in the order given."""
        if not found:
            return []
        now = tx.now_ms()
        rows = await tx.fetchall(
            "WITH m(id, receipt) AS MATERIALIZED"
            " (SELECT value ->> 0, value ->> 1 FROM json_each(?))"
            " UPDATE attempts SET receipt_number = m.receipt, updated_at = ?,"
            " flags = flags & ~?, completed_at = coalesce(completed_at, ?) FROM m"
            " WHERE attempts.shop_id = ? AND attempts.id = m.id AND attempts.state = 'COMPLETED'"
            " AND attempts.receipt_number IS NULL RETURNING *",
            (
                json.dumps([[attempt_id, receipt] for attempt_id, receipt, _ in found]),
                now,
                int(AttemptFlag.RECEIPT_PENDING),
                now,
                shop_id,
            ),
        )
        by_id = {row["id"]: attempt_from_row(row) for row in rows}
        filled = []
        for attempt_id, receipt, detail in found:
            attempt = by_id.pop(attempt_id, None)
            if attempt is not None and attempt.receipt_number == receipt:
                filled.append((attempt, receipt, detail))
        await self._audit.append_many(
            tx,
            [
                AuditDraft(
                    actor=cause,
                    action=AuditAction.ATTEMPT_UPDATED,
                    shop_id=shop_id,
                    attempt_id=attempt.id,
                    detail={
                        "from": AttemptState.COMPLETED.value,
                        "to": AttemptState.COMPLETED.value,
                        "fields": {"receipt_number": receipt},
                        "flags_added": [],
                        "flags_cleared": [AttemptFlag.RECEIPT_PENDING.name],
                        **detail,
                    },
                )
                for attempt, receipt, detail in filled
            ],
        )
        return [attempt for attempt, _, _ in filled]

    async def add_flags(
        self,
        tx: WriteTx,
        shop_id: str,
        attempt_id: int,
        flags: AttemptFlag,
        actor: Actor,
        *,
        reason: str | None = None,
    ) -> Attempt:
        """Add flags to an attempt in any state (COMPLETED included)."""
        return await self._update(
            tx,
            shop_id,
            attempt_id,
            "flags = flags | ?, updated_at = ?",
            [int(flags), tx.now_ms()],
            actor=actor,
            action=AuditAction.ATTEMPT_FLAGGED,
            detail={"flags": [f.name for f in AttemptFlag if f & flags and f], "reason": reason},
        )

    async def await_confirmation(
        self,
        tx: WriteTx,
        shop_id: str,
        attempt_id: int,
        claim: ConfirmingClaim,
        *,
        code: str | None,
        receipt: str | None,
        actor: Actor,
        action: AuditAction,
        detail: Mapping[str, Any],
    ) -> Attempt:
        """A callback's claim now waits for its confirming query (audited as `action`)."""
        return await self._update(
            tx,
            shop_id,
            attempt_id,
            "confirming = ?, confirming_code = ?, confirming_receipt = ?, updated_at = ?",
            [claim.value, code, receipt, tx.now_ms()],
            actor=actor,
            action=action,
            detail={**detail, "claim": claim.value, "code": code, "receipt": receipt},
        )

    async def end_confirmation(
        self,
        tx: WriteTx,
        shop_id: str,
        attempt_id: int,
        *,
        actor: Actor,
        action: AuditAction,
        detail: Mapping[str, Any],
    ) -> Attempt:
        """The confirming query has settled the claim (audited as `action`)."""
        return await self._update(
            tx,
            shop_id,
            attempt_id,
            "confirming = NULL, confirming_code = NULL, confirming_receipt = NULL, updated_at = ?",
            [tx.now_ms()],
            actor=actor,
            action=action,
            detail=detail,
        )

    async def hand_over(
        self, tx: WriteTx, shop_id: str, attempt_id: int, *, action: AuditAction, actor: Actor
    ) -> Attempt:
        """The cashier stopped waiting: the reconciler owns the attempt (audited as `action`)."""
        current = await self._require(shop_id, attempt_id, tx)
        return await self._update(
            tx,
            shop_id,
            attempt_id,
            "handed_over_at = coalesce(handed_over_at, ?), updated_at = ?",
            [tx.now_ms(), tx.now_ms()],
            actor=actor,
            action=action,
            detail={"state": current.state.value},
        )

    async def resolve(
        self,
        tx: WriteTx,
        shop_id: str,
        attempt_id: int,
        note: str,
        *,
        actor: Actor = Actor.MANAGER,
    ) -> Attempt:
        """A manager has dealt with a problem payment: flag it resolved with their note."""
        note = resolution_note(note)
        return await self._update(
            tx,
            shop_id,
            attempt_id,
            "flags = flags | ?, review_note = ?, updated_at = ?",
            [int(AttemptFlag.RESOLVED_BY_MANAGER), note, tx.now_ms()],
            actor=actor,
            action=AuditAction.ATTEMPT_RESOLVED,
            detail={"note": note},
        )

    async def _update(
        self,
        tx: WriteTx,
        shop_id: str,
        attempt_id: int,
        assignments: str,
        params: list[Any],
        *,
        actor: Actor,
        action: AuditAction,
        detail: Mapping[str, Any],
    ) -> Attempt:
        """Apply `assignments` (fixed column names) to one attempt and append its audit entry,
        both in `tx`; the row as it now is."""
        row = await tx.fetchone(
            f"UPDATE attempts SET {assignments}"  # noqa: S608 - column names are ours
            " WHERE shop_id = ? AND id = ? RETURNING *",
            (*params, shop_id, attempt_id),
        )
        if row is None:
            raise NotFoundError(f"there is no attempt {attempt_id} for shop {shop_id!r}")
        await self._audit.append(
            tx, actor=actor, action=action, shop_id=shop_id, attempt_id=attempt_id, detail=detail
        )
        return attempt_from_row(row)

    # --- single reads -------------------------------------------------------------------------

    async def _one(
        self, reader: Reader | None, where: str, params: tuple[Any, ...]
    ) -> Attempt | None:
        row = await (reader or self._db).fetchone(
            f"SELECT * FROM attempts WHERE {where}",  # noqa: S608 - fixed fragments only
            params,
        )
        return None if row is None else attempt_from_row(row)

    async def _require(self, shop_id: str, attempt_id: int, tx: Reader) -> Attempt:
        attempt = await self.get(shop_id, attempt_id, tx=tx)
        if attempt is None:
            raise RuntimeError("the attempt just written is not there")
        return attempt

    async def get(
        self, shop_id: str, attempt_id: int, *, tx: Reader | None = None
    ) -> Attempt | None:
        return await self._one(tx, "shop_id = ? AND id = ?", (shop_id, attempt_id))

    async def by_attempt_ref(
        self, shop_id: str, attempt_ref: str, *, tx: Reader | None = None
    ) -> Attempt | None:
        return await self._one(tx, "shop_id = ? AND attempt_ref = ?", (shop_id, attempt_ref))

    async def by_checkout_request_id(
        self, shop_id: str, checkout_request_id: str, *, tx: Reader | None = None
    ) -> Attempt | None:
        return await self._one(
            tx, "shop_id = ? AND checkout_request_id = ?", (shop_id, checkout_request_id)
        )

    async def live_for_phone(
        self, shop_id: str, till_id: str, phone: str, *, tx: Reader | None = None
    ) -> Attempt | None:
        """The live attempt (CREATED, PENDING or UNKNOWN) of a phone on a till, if any."""
        return await self._one(
            tx,
            f"shop_id = ? AND till_id = ? AND phone = ? AND {LIVE_SQL}",
            (shop_id, till_id, phone),
        )

    # --- lists ------------------------------------------------------------------------------

    async def _many(
        self, reader: Reader | None, where: str, params: tuple[Any, ...], order: str
    ) -> list[Attempt]:
        rows = await (reader or self._db).fetchall(
            f"SELECT * FROM attempts WHERE {where} ORDER BY {order}",  # noqa: S608 - fixed
            params,
        )
        return [attempt_from_row(row) for row in rows]

    async def for_sale(
        self, shop_id: str, sale_ref: str, *, tx: Reader | None = None
    ) -> list[Attempt]:
        """Every attempt for one sale, first attempt first."""
        return await self._many(
            tx, "shop_id = ? AND sale_ref = ?", (shop_id, sale_ref), "attempt_number"
        )

    async def by_receipt(
        self, shop_id: str, receipt_number: str, *, tx: Reader | None = None
    ) -> list[Attempt]:
        return await self._many(
            tx, "shop_id = ? AND receipt_number = ?", (shop_id, receipt_number), "id"
        )

    async def live(
        self,
        shop_id: str,
        till_id: str,
        states: Collection[AttemptState] = LIVE,
        *,
        tx: Reader | None = None,
    ) -> list[Attempt]:
        """A till's live attempts (optionally only some live states), oldest first."""
        chosen = sorted(AttemptState(s).value for s in states if s in LIVE)
        if not chosen:
            return []
        marks = ", ".join("?" * len(chosen))
        return await self._many(
            tx,
            f"shop_id = ? AND till_id = ? AND {LIVE_SQL} AND state IN ({marks})",
            (shop_id, till_id, *chosen),
            "created_at, id",
        )

    async def problems(
        self,
        shop_id: str,
        filters: AttemptFilter | None = None,
        *,
        limit: int = 50,
        cursor: PageCursor | None = None,
    ) -> Page[Attempt]:
        """The problem-payments list: failed, expired, unknown, needing review, or flagged
        (late, duplicate, receipt pending, suspicious), newest first, resolved ones left out
        unless asked for."""
        return await self._page(shop_id, filters or AttemptFilter(), limit, cursor, True)

    async def history(
        self,
        shop_id: str,
        filters: AttemptFilter | None = None,
        *,
        limit: int = 50,
        cursor: PageCursor | None = None,
    ) -> Page[Attempt]:
        """Every attempt, newest first, narrowed by `filters`."""
        filters = filters or AttemptFilter(include_resolved=True)
        return await self._page(shop_id, filters, limit, cursor, False)

    async def _page(
        self,
        shop_id: str,
        filters: AttemptFilter,
        limit: int,
        cursor: PageCursor | None,
        problems_only: bool,
    ) -> Page[Attempt]:
        if not 1 <= limit <= 1000:
            raise AttemptInputError("limit", "must be between 1 and 1000")
        where, params = attempt_conditions(shop_id, filters, problems_only=problems_only)
        if cursor is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend((cursor.created_at_ms, cursor.id))
        rows = await self._db.fetchall(
            f"SELECT * FROM attempts WHERE {' AND '.join(where)}"  # noqa: S608 - fixed fragments
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit + 1),
        )
        items = tuple(attempt_from_row(row) for row in rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = PageCursor(created_at_ms=last["created_at"], id=last["id"])
        return Page(items=items, next_cursor=next_cursor)

    # --- summaries ------------------------------------------------------------------------------

    async def summary(self, shop_id: str, since: datetime, until: datetime) -> Summary:
        """Totals for attempts created in [since, until): count, paid, amount paid, failures by
        result code, the average seconds from push (or creation) to payment, and the same per
        sale (paid, settled unpaid)."""
        # One pass of conditional sums (a GROUP BY over every row would sort them all), then
        # the failed rows alone grouped by code.
        per_state = ", ".join(
            f"sum(state = '{state.value}') AS {state.value}" for state in AttemptState
        )
        params = (shop_id, to_ms(since), to_ms(until))
        totals = await self._db.fetchone(
            "SELECT coalesce(sum(CASE WHEN state = 'COMPLETED' THEN amount END), 0) AS amount,"  # noqa: S608 - state names are constants
            " sum(CASE WHEN state = 'COMPLETED'"
            "   THEN completed_at - coalesce(push_sent_at, created_at) END) AS pay_ms,"
            " sum(state = 'COMPLETED' AND completed_at IS NOT NULL) AS timed,"
            f" sum(state = 'COMPLETED' AND (flags & {int(AttemptFlag.REVERSED)}) != 0)"
            "   AS reversed,"
            " coalesce(sum(CASE WHEN state = 'COMPLETED'"
            f"   AND (flags & {int(AttemptFlag.REVERSED)}) != 0 THEN amount END), 0)"
            "   AS amount_reversed,"
            f" {per_state}"
            " FROM attempts WHERE shop_id = ? AND created_at >= ? AND created_at < ?",
            params,
        )
        codes = await self._db.fetchall(
            "SELECT coalesce(result_code, 'none') AS code, count(*) AS n FROM attempts"
            " WHERE shop_id = ? AND created_at >= ? AND created_at < ? AND state = 'FAILED'"
            " GROUP BY code",
            params,
        )
        sales = await self._db.fetchone(
            "SELECT count(*) AS sales, coalesce(sum(paid), 0) AS paid,"  # noqa: S608 - constants
            " coalesce(sum(NOT paid AND settled), 0) AS not_paid FROM ("
            "  SELECT max(state = 'COMPLETED') AS paid,"
            f"  min(NOT ({LIVE_SQL})) AS settled"
            "  FROM attempts WHERE shop_id = ? AND created_at >= ? AND created_at < ?"
            "  GROUP BY sale_ref)",
            params,
        )
        if totals is None or sales is None:
            raise RuntimeError("an aggregate query returned no row")
        by_state = {state: int(totals[state.value] or 0) for state in AttemptState}
        timed = int(totals["timed"] or 0)
        return Summary(
            attempts=sum(by_state.values()),
            paid=by_state[AttemptState.COMPLETED],
            amount_paid=int(totals["amount"]),
            failed=by_state[AttemptState.FAILED],
            failures_by_code={row["code"]: int(row["n"]) for row in codes},
            average_seconds_to_pay=int(totals["pay_ms"]) / timed / 1000 if timed else None,
            by_state={state: n for state, n in by_state.items() if n},
            sales=int(sales["sales"]),
            sales_paid=int(sales["paid"]),
            sales_not_paid=int(sales["not_paid"]),
            reversed=int(totals["reversed"] or 0),
            amount_reversed=int(totals["amount_reversed"]),
        )

    async def daily_summary(self, shop_id: str, day: date, tz: tzinfo) -> Summary:
        """`summary` for one calendar day in the shop's time zone."""
        start = datetime.combine(day, time.min, tzinfo=tz)
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
        return await self.summary(shop_id, start, end)
