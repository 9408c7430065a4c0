"""Shifts as the till keeps them: one open shift per till (a partial unique index), closed with
the cash counted and a Z number given inside the closing transaction.

Z numbers are per till and have no gaps: the closing transaction (`BEGIN IMMEDIATE`, so it
holds SQLite's write lock from its first statement) reads the till's highest Z and writes the
next one, and a closed shift can be neither changed nor deleted (triggers in migration 13), so a
number once given stays given. Every change is written with its audit entry in the caller's
transaction, and every query is by shop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from smartduka_tui.model import Actor, AuditAction, SaleState, TenderKind
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import StoreError
from smartduka_tui.store.records import from_ms, row_reader, to_ms


class ShiftConflictError(StoreError):
    """The shift change makes no sense in the till's present state; nothing was changed."""


class ShiftAlreadyOpenError(ShiftConflictError):
    def __init__(self, existing: Shift) -> None:
        self.existing = existing
        super().__init__(
            f"till {existing.till_id} already has an open shift (opened by {existing.cashier}); "
            "close it before opening another"
        )


class ShiftNotOpenError(ShiftConflictError):
    def __init__(self, till_id: str) -> None:
        super().__init__(f"till {till_id} has no open shift; open one first")


class ShiftAlreadyClosedError(ShiftConflictError):
    def __init__(self, shift: Shift) -> None:
        self.shift = shift
        super().__init__(
            f"this shift is already closed (Z {shift.z_number}); a closed shift never changes"
        )


@dataclass(frozen=True, slots=True)
class Shift:
    """One shift of one till. Money in whole shillings; times are aware (UTC)."""

    id: int
    shop_id: str
    till_id: str
    cashier: str
    opened_at: datetime
    opening_float: int
    closed_at: datetime | None = None
    counted_cash: int | None = None
    expected_cash: int | None = None
    z_number: int | None = None
    z_report: str | None = None
    """The Z report as it was at close (JSON, payments/shift_report.py)."""

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class TenderRow:
    """One tender of a sale of this till, with its sale's state and total (for the report)."""

    sale_ref: str
    sale_state: SaleState
    sale_total: int
    kind: TenderKind
    amount: int
    receipt_number: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class StatementReceipt:
    """A receipt of the pulled M-Pesa statement (amount in whole shillings); `other_till`
    when another till of the shop holds it (its attempt or its direct payment)."""

    receipt: str
    amount: int
    paid_at: datetime
    other_till: bool


_shift = row_reader(Shift, opening_float=itemgetter("float"))
_tender_row = row_reader(TenderRow)
_statement_receipt = row_reader(StatementReceipt)


class Shifts:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def current(
        self, shop_id: str, till_id: str, *, tx: Reader | None = None
    ) -> Shift | None:
        """The till's open shift, if it has one."""
        row = await (tx or self._db).fetchone(
            "SELECT * FROM shifts WHERE shop_id = ? AND till_id = ? AND closed_at IS NULL",
            (shop_id, till_id),
        )
        return None if row is None else _shift(row)

    async def get(self, shop_id: str, shift_id: int, *, tx: Reader | None = None) -> Shift | None:
        row = await (tx or self._db).fetchone(
            "SELECT * FROM shifts WHERE shop_id = ? AND id = ?", (shop_id, shift_id)
        )
        return None if row is None else _shift(row)

    async def by_z(self, shop_id: str, till_id: str, z_number: int) -> Shift | None:
        row = await self._db.fetchone(
            "SELECT * FROM shifts WHERE shop_id = ? AND till_id = ? AND z_number = ?",
            (shop_id, till_id, z_number),
        )
        return None if row is None else _shift(row)

    async def recent(self, shop_id: str, till_id: str, *, limit: int = 50) -> list[Shift]:
        """The till's shifts, newest first (the open one, if any, on top)."""
        rows = await self._db.fetchall(
            "SELECT * FROM shifts WHERE shop_id = ? AND till_id = ?"
            " ORDER BY opened_at DESC, id DESC LIMIT ?",
            (shop_id, till_id, limit),
        )
        return [_shift(row) for row in rows]

    async def open(
        self,
        tx: WriteTx,
        *,
        shop_id: str,
        till_id: str,
        cashier: str,
        opening_float: int,
        actor: Actor,
    ) -> Shift:
        """Open the till's shift with its float, with the audit entry.
        ShiftAlreadyOpenError when the till has one open (the index refuses it too)."""
        existing = await self.current(shop_id, till_id, tx=tx)
        if existing is not None:
            raise ShiftAlreadyOpenError(existing)
        try:
            row = await tx.fetchone(
                "INSERT INTO shifts (shop_id, till_id, cashier, opened_at, float)"
                " VALUES (?, ?, ?, ?, ?) RETURNING *",
                (shop_id, till_id, cashier, tx.now_ms(), opening_float),
            )
        except sqlite3.IntegrityError:
            # Another connection opened one between our read and this insert.
            racing = await self.current(shop_id, till_id, tx=tx)
            if racing is None:
                raise
            raise ShiftAlreadyOpenError(racing) from None
        assert row is not None
        shift = _shift(row)
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SHIFT_OPENED,
            shop_id=shop_id,
            detail={
                "shift": shift.id,
                "till_id": till_id,
                "cashier": cashier,
                "float": opening_float,
            },
        )
        return shift

    async def close(
        self,
        tx: WriteTx,
        shift: Shift,
        *,
        counted_cash: int,
        expected_cash: int,
        z_report: Callable[[int, datetime], str],
        actor: Actor,
    ) -> Shift:
        """Close `shift` with the cash counted and expected, giving it the till's next Z
        number (max + 1, read in this transaction, which holds the write lock) and the report
        `z_report(z_number, closed_at)` makes, with the audit entry.
        ShiftAlreadyClosedError when it is closed already."""
        latest = await self.get(shift.shop_id, shift.id, tx=tx)
        if latest is None:
            raise ShiftNotOpenError(shift.till_id)
        if not latest.is_open:
            raise ShiftAlreadyClosedError(latest)
        top = await tx.fetchone(
            "SELECT coalesce(max(z_number), 0) AS z FROM shifts WHERE shop_id = ? AND till_id = ?",
            (shift.shop_id, shift.till_id),
        )
        assert top is not None
        z_number = int(top["z"]) + 1
        now = tx.now_ms()
        row = await tx.fetchone(
            "UPDATE shifts SET closed_at = ?, counted_cash = ?, expected_cash = ?,"
            " z_number = ?, z_report = ?"
            " WHERE shop_id = ? AND id = ? AND closed_at IS NULL RETURNING *",
            (
                now,
                counted_cash,
                expected_cash,
                z_number,
                z_report(z_number, from_ms(now)),
                shift.shop_id,
                shift.id,
            ),
        )
        assert row is not None, "the shift was read open in this transaction"
        closed = _shift(row)
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SHIFT_CLOSED,
            shop_id=shift.shop_id,
            detail={
                "shift": closed.id,
                "till_id": closed.till_id,
                "z_number": closed.z_number,
                "counted_cash": counted_cash,
                "expected_cash": expected_cash,
                "difference": counted_cash - expected_cash,
            },
        )
        return closed

    async def record_report(
        self,
        tx: WriteTx,
        shift: Shift,
        *,
        action: AuditAction,
        actor: Actor,
        detail: dict[str, Any],
    ) -> None:
        """Audit a report viewed, printed or exported (the report itself changes nothing)."""
        await self._audit.append(
            tx,
            actor=actor,
            action=action,
            shop_id=shift.shop_id,
            detail={"shift": shift.id, "till_id": shift.till_id, "z_number": shift.z_number}
            | detail,
        )

    async def tenders(
        self,
        shop_id: str,
        till_id: str,
        since: datetime,
        until: datetime,
        *,
        tx: Reader | None = None,
    ) -> list[TenderRow]:
        """The till's tenders taken in [since, until), with their sales' states, oldest first."""
        rows = await (tx or self._db).fetchall(
            "SELECT t.sale_ref, s.state AS sale_state, s.total AS sale_total, t.kind, t.amount,"
            " t.receipt_number, t.at"
            " FROM sale_tenders t JOIN sales s ON s.shop_id = t.shop_id AND s.sale_ref = t.sale_ref"
            " WHERE t.shop_id = ? AND t.till_id = ? AND t.at >= ? AND t.at < ?"
            " ORDER BY t.at, t.id",
            (shop_id, till_id, to_ms(since), to_ms(until)),
        )
        return [_tender_row(row) for row in rows]

    async def statement_receipts(
        self,
        shop_id: str,
        till_id: str,
        shortcode: str,
        since: datetime,
        until: datetime,
        *,
        tx: Reader | None = None,
    ) -> list[StatementReceipt]:
        """The pulled statement's receipts for `shortcode` paid in [since, until), each marked
        when another till of the shop holds it (its STK attempt, or a direct payment it took
        or has as a tender)."""
        rows = await (tx or self._db).fetchall(
            "SELECT p.transaction_id AS receipt, p.amount, p.paid_at,"
            " (EXISTS (SELECT 1 FROM attempts a WHERE a.shop_id = p.shop_id"
            "          AND a.receipt_number = p.transaction_id AND a.till_id != ?)"
            "  OR EXISTS (SELECT 1 FROM c2b_payments c WHERE c.shop_id = p.shop_id"
            "          AND c.trans_id = p.transaction_id AND c.attached_till != ?)"
            "  OR EXISTS (SELECT 1 FROM sale_tenders t WHERE t.shop_id = p.shop_id"
            "          AND t.kind = 'MPESA_C2B' AND t.receipt_number = p.transaction_id"
            "          AND t.till_id != ?)) AS other_till"
            " FROM pulled_transactions p"
            " WHERE p.shop_id = ? AND p.shortcode = ? AND p.paid_at >= ? AND p.paid_at < ?"
            " ORDER BY p.paid_at, p.transaction_id",
            (till_id, till_id, till_id, shop_id, shortcode, to_ms(since), to_ms(until)),
        )
        return [_statement_receipt(row) for row in rows]
