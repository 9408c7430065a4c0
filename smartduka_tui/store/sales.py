"""Sales as the till keeps them: one row per sale per shop (its total and state), its lines,
and its tenders (what each cash or M-Pesa payment pays toward the total).

Money is whole shillings. Each change is written with its audit entry in the caller's
transaction, so a tender and the payment it records (an attempt completing, a direct payment
attached) are one commit. The rules of a sale (when it is paid, what may be voided) are the
payment layer's (`payments/sales.py`); this module keeps the rows and refuses what the rows
themselves cannot hold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from smartduka_tui.model import (
    COUNTED_SALE_STATES,
    Actor,
    AttemptFlag,
    AuditAction,
    SaleState,
    TenderKind,
    TenderSums,
)
from smartduka_tui.store.audit import AuditLog
from smartduka_tui.store.db import Database, Reader, WriteTx
from smartduka_tui.store.errors import InputError, NotFoundError
from smartduka_tui.store.records import row_reader, to_ms


class SaleStateError(InputError):
    """The sale is not in a state that allows this change; nothing was changed."""


_STATE_ACTIONS = {
    SaleState.PAID: AuditAction.SALE_PAID,
    SaleState.ABANDONED: AuditAction.SALE_ABANDONED,
    SaleState.VOIDED: AuditAction.SALE_VOIDED,
    SaleState.REFUNDED: AuditAction.SALE_REFUNDED,
}


@dataclass(frozen=True, slots=True)
class SaleLine:
    description: str
    quantity: int
    unit_price: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True, slots=True)
class NewTender:
    """A payment toward a sale. `amount` is what it pays toward the total; a cash tender
    also says the cash handed over (`cash_given`, at least `amount`); M-Pesa tenders name
    their receipt (an STK attempt's may come later) and an STK one its attempt."""

    kind: TenderKind
    amount: int
    cash_given: int | None = None
    receipt_number: str | None = None
    attempt_id: int | None = None

    @property
    def change_given(self) -> int | None:
        return None if self.cash_given is None else self.cash_given - self.amount

    def problem(self) -> str | None:
        """What the row could not hold, or None."""
        if self.amount < 1:
            return "a tender pays at least 1 shilling"
        if (self.kind is TenderKind.CASH) != (self.cash_given is not None):
            return "a cash tender, and only one, says the cash given"
        if self.cash_given is not None and self.cash_given < self.amount:
            return "the cash given is less than what it pays"
        if (self.kind is TenderKind.MPESA_STK) != (self.attempt_id is not None):
            return "an STK tender, and only one, names its attempt"
        return None


@dataclass(frozen=True, slots=True)
class SaleTender:
    id: int
    shop_id: str
    sale_ref: str
    till_id: str
    kind: TenderKind
    amount: int
    cash_given: int | None
    change_given: int | None
    receipt_number: str | None
    attempt_id: int | None
    at: datetime
    reversed: bool = False
    """An M-Pesa tender whose money M-Pesa's reversal gave back (its attempt flagged REVERSED,
    or its direct payment marked reversed); read with the sale, so a refunded split sale can
    say whether its M-Pesa part still awaits its reversal."""


@dataclass(frozen=True, slots=True)
class Sale(TenderSums):
    shop_id: str
    till_id: str
    sale_ref: str
    total: int
    state: SaleState
    opened_at: datetime
    closed_at: datetime | None
    note: str | None
    updated_at: datetime
    lines: tuple[SaleLine, ...]
    tenders: tuple[SaleTender, ...]


_tender = row_reader(
    SaleTender,
    reversed=lambda row: bool(row["reversed"]) if "reversed" in row.keys() else False,  # noqa: SIM118 - a row, not a dict
)
_sale = row_reader(Sale, later=("lines", "tenders"))


# Whether each tender's M-Pesa money was reversed, beside the tender's own columns (its one
# parameter, first, is the REVERSED flag).
_TENDERS_WITH_REVERSAL = (
    "SELECT t.*, CASE t.kind"
    " WHEN 'MPESA_STK' THEN coalesce((SELECT a.flags & ? != 0 FROM attempts a"
    " WHERE a.shop_id = t.shop_id AND a.id = t.attempt_id), 0)"
    " WHEN 'MPESA_C2B' THEN coalesce((SELECT c.reversed_at IS NOT NULL FROM c2b_payments c"
    " WHERE c.shop_id = t.shop_id AND c.trans_id = t.receipt_number), 0)"
    " ELSE 0 END AS reversed FROM sale_tenders t"
)


def _check_total(total: int, lines: tuple[SaleLine, ...]) -> None:
    if total < 1 or sum(line.amount for line in lines) not in (0, total):
        raise InputError("total", "must be at least 1 shilling and the lines' sum")


class Sales:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    # ------------------------------------------------------------------ reads

    async def get(self, shop_id: str, sale_ref: str, *, tx: WriteTx | None = None) -> Sale | None:
        reader: Reader = tx or self._db
        row = await reader.fetchone(
            "SELECT * FROM sales WHERE shop_id = ? AND sale_ref = ?", (shop_id, sale_ref)
        )
        if row is None:
            return None
        return (await self._complete(reader, [row]))[0]

    async def _complete(self, reader: Reader, rows: list[Any]) -> list[Sale]:
        """Sales from their rows, with their lines and tenders (two queries for all)."""
        if not rows:
            return []
        shop_id = rows[0]["shop_id"]
        refs = [row["sale_ref"] for row in rows]
        marks = ", ".join("?" * len(refs))
        lines: dict[str, list[SaleLine]] = {ref: [] for ref in refs}
        for line in await reader.fetchall(
            f"SELECT * FROM sale_lines WHERE shop_id = ? AND sale_ref IN ({marks})"  # noqa: S608 - placeholders only
            " ORDER BY sale_ref, line_no",
            (shop_id, *refs),
        ):
            lines[line["sale_ref"]].append(
                SaleLine(line["description"], line["quantity"], line["unit_price"])
            )
        tenders: dict[str, list[SaleTender]] = {ref: [] for ref in refs}
        for tender in await reader.fetchall(
            f"{_TENDERS_WITH_REVERSAL} WHERE t.shop_id = ? AND t.sale_ref IN ({marks})"
            " ORDER BY t.id",
            (int(AttemptFlag.REVERSED), shop_id, *refs),
        ):
            tenders[tender["sale_ref"]].append(_tender(tender))
        return [
            _sale(row, lines=tuple(lines[row["sale_ref"]]), tenders=tuple(tenders[row["sale_ref"]]))
            for row in rows
        ]

    async def for_till(
        self,
        shop_id: str,
        till_id: str,
        *,
        states: Collection[SaleState] | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Sale]:
        """A till's sales, newest first: in `states` (all by default), opened since `since`."""
        sql = "SELECT * FROM sales WHERE shop_id = ? AND till_id = ?"
        params: list[Any] = [shop_id, till_id]
        if states is not None:
            wanted = sorted(SaleState(state).value for state in states)
            if not wanted:
                return []
            sql += f" AND state IN ({', '.join('?' * len(wanted))})"
            params += wanted
        if since is not None:
            sql += " AND opened_at >= ?"
            params.append(to_ms(since))
        sql += " ORDER BY opened_at DESC, sale_ref DESC LIMIT ?"
        params.append(limit)
        return await self._complete(self._db, await self._db.fetchall(sql, params))

    async def by_attempt(
        self, shop_id: str, attempt_id: int, *, tx: WriteTx | None = None
    ) -> SaleTender | None:
        """The tender an STK attempt paid, if it paid one."""
        row = await (tx or self._db).fetchone(
            "SELECT * FROM sale_tenders WHERE shop_id = ? AND attempt_id = ?",
            (shop_id, attempt_id),
        )
        return None if row is None else _tender(row)

    async def tender_totals(
        self,
        shop_id: str,
        since: datetime,
        until: datetime,
        *,
        till_id: str | None = None,
    ) -> dict[TenderKind, int]:
        """What each kind of tender took in [since, until): every kind present, 0 where
        nothing was taken. The cash of voided and refunded sales is left out (it went back);
        their M-Pesa stays, as on the statement, until its reversal."""
        counted = sorted(state.value for state in COUNTED_SALE_STATES)
        marks = ", ".join("?" * len(counted))
        sql = (
            "SELECT t.kind, sum(t.amount) AS taken FROM sale_tenders t"  # noqa: S608 - placeholders only
            " JOIN sales s ON s.shop_id = t.shop_id AND s.sale_ref = t.sale_ref"
            " WHERE t.shop_id = ? AND t.at >= ? AND t.at < ?"
            f" AND (t.kind != 'CASH' OR s.state IN ({marks}))"
        )
        params: list[Any] = [shop_id, to_ms(since), to_ms(until), *counted]
        if till_id is not None:
            sql += " AND t.till_id = ?"
            params.append(till_id)
        sql += " GROUP BY t.kind"
        totals = dict.fromkeys(TenderKind, 0)
        for row in await self._db.fetchall(sql, params):
            totals[TenderKind(row["kind"])] = row["taken"]
        return totals

    # ------------------------------------------------------------------ writes

    async def open(
        self,
        tx: WriteTx,
        shop_id: str,
        till_id: str,
        sale_ref: str,
        total: int,
        lines: Iterable[SaleLine],
        *,
        actor: Actor = Actor.CASHIER,
    ) -> Sale:
        """A new OPEN sale; SaleStateError when the shop has that sale number already."""
        kept = tuple(lines)
        _check_total(total, kept)
        inserted = await tx.fetchall(
            "INSERT INTO sales (shop_id, till_id, sale_ref, total, state, opened_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING sale_ref",
            (shop_id, till_id, sale_ref, total, SaleState.OPEN.value, tx.now_ms(), tx.now_ms()),
        )
        if not inserted:
            raise SaleStateError("sale_ref", f"sale {sale_ref} exists already")
        detail = {"sale_ref": sale_ref, "till_id": till_id, "total": total}
        return await self._write_lines(tx, shop_id, sale_ref, kept, actor=actor, detail=detail)

    async def replace_total(
        self,
        tx: WriteTx,
        shop_id: str,
        sale_ref: str,
        total: int,
        lines: Iterable[SaleLine],
        *,
        actor: Actor = Actor.CASHIER,
    ) -> Sale:
        """A new total (and lines) for an open sale that nothing has paid toward yet."""
        kept = tuple(lines)
        current = await self._current(tx, shop_id, sale_ref)
        if current.state is not SaleState.OPEN or current.tenders:
            raise SaleStateError(
                "total", f"sale {sale_ref} has payments already: its total cannot change"
            )
        _check_total(total, kept)
        await tx.execute(
            "UPDATE sales SET total = ?, updated_at = ? WHERE shop_id = ? AND sale_ref = ?",
            (total, tx.now_ms(), shop_id, sale_ref),
        )
        await tx.execute(
            "DELETE FROM sale_lines WHERE shop_id = ? AND sale_ref = ?", (shop_id, sale_ref)
        )
        detail = {"sale_ref": sale_ref, "total": total, "was": current.total}
        return await self._write_lines(tx, shop_id, sale_ref, kept, actor=actor, detail=detail)

    async def _current(self, tx: WriteTx, shop_id: str, sale_ref: str) -> Sale:
        sale = await self.get(shop_id, sale_ref, tx=tx)
        if sale is None:
            raise NotFoundError(f"there is no sale {sale_ref} for shop {shop_id!r}")
        return sale

    async def _write_lines(
        self,
        tx: WriteTx,
        shop_id: str,
        sale_ref: str,
        lines: tuple[SaleLine, ...],
        *,
        actor: Actor,
        detail: dict[str, Any],
    ) -> Sale:
        """Write a sale's lines and its SALE_OPENED entry (`detail` and how many lines), in
        `tx`; the sale as it now is."""
        for number, line in enumerate(lines, start=1):
            await tx.execute(
                "INSERT INTO sale_lines (shop_id, sale_ref, line_no, description, quantity,"
                " unit_price) VALUES (?, ?, ?, ?, ?, ?)",
                (shop_id, sale_ref, number, line.description, line.quantity, line.unit_price),
            )
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SALE_OPENED,
            shop_id=shop_id,
            detail={**detail, "lines": len(lines)},
        )
        return await self._current(tx, shop_id, sale_ref)

    async def add_tender(
        self,
        tx: WriteTx,
        shop_id: str,
        sale_ref: str,
        till_id: str,
        tender: NewTender,
        *,
        actor: Actor = Actor.CASHIER,
    ) -> SaleTender:
        """Record a payment toward the sale (an open or abandoned one: money that arrives
        late for a sale left part paid still counts)."""
        problem = tender.problem()
        if problem is not None:
            raise InputError("tender", problem)
        current = await self._current(tx, shop_id, sale_ref)
        if current.state not in (SaleState.OPEN, SaleState.ABANDONED):
            raise SaleStateError("sale_ref", f"sale {sale_ref} is {current.state.value.lower()}")
        row = await tx.fetchone(
            "INSERT INTO sale_tenders (shop_id, sale_ref, till_id, kind, amount, cash_given,"
            " change_given, receipt_number, attempt_id, at) VALUES (:shop_id, :sale_ref,"
            " :till_id, :kind, :amount, :cash_given, :change_given, :receipt_number,"
            " :attempt_id, :at) RETURNING *",
            {
                **asdict(tender),
                "kind": tender.kind.value,
                "change_given": tender.change_given,
                "shop_id": shop_id,
                "sale_ref": sale_ref,
                "till_id": till_id,
                "at": tx.now_ms(),
            },
        )
        assert row is not None, "INSERT ... RETURNING gives the row"
        detail: dict[str, Any] = {
            "sale_ref": sale_ref,
            "tender_id": row["id"],
            "kind": tender.kind.value,
            "amount": tender.amount,
            "till_id": till_id,
        }
        if tender.cash_given is not None:
            detail["cash_given"] = tender.cash_given
            detail["change_given"] = tender.change_given
        if tender.receipt_number is not None:
            detail["receipt"] = tender.receipt_number
        if tender.attempt_id is not None:
            # In the detail, not the entry's attempt column: an attempt's timeline is its own
            # evidence; the sale's entries are the sale's.
            detail["attempt_id"] = tender.attempt_id
        await self._audit.append(
            tx,
            actor=actor,
            action=AuditAction.SALE_TENDER_ADDED,
            shop_id=shop_id,
            detail=detail,
        )
        return _tender(row)

    async def fill_receipt(self, tx: WriteTx, shop_id: str, attempt_id: int, receipt: str) -> None:
        """An STK tender's M-Pesa receipt that arrived after the payment (no audit entry of
        its own: the attempt's receipt is audited where it is filled, in this transaction)."""
        await tx.execute(
            "UPDATE sale_tenders SET receipt_number = ?"
            " WHERE shop_id = ? AND attempt_id = ? AND receipt_number IS NULL",
            (receipt, shop_id, attempt_id),
        )

    async def move(
        self,
        tx: WriteTx,
        shop_id: str,
        sale_ref: str,
        from_states: Collection[SaleState],
        to: SaleState,
        *,
        actor: Actor,
        note: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Sale:
        """Move a sale from one of `from_states` to `to` (compare-and-set), with its audit
        entry; SaleStateError, changing nothing, when it is in another state."""
        current = await self._current(tx, shop_id, sale_ref)
        if current.state not in from_states:
            raise SaleStateError(
                "sale_ref", f"sale {sale_ref} is {current.state.value.lower()} already"
            )
        now = tx.now_ms()
        await tx.execute(
            "UPDATE sales SET state = ?, closed_at = ?, note = coalesce(?, note), updated_at = ?"
            " WHERE shop_id = ? AND sale_ref = ? AND state = ?",
            (to.value, now, note, now, shop_id, sale_ref, current.state.value),
        )
        await self._audit.append(
            tx,
            actor=actor,
            action=_STATE_ACTIONS[to],
            shop_id=shop_id,
            detail={
                "sale_ref": sale_ref,
                "from": current.state.value,
                "to": to.value,
                "total": current.total,
                "paid": current.paid,
                **({"note": note} if note is not None else {}),
                **(detail or {}),
            },
        )
        return await self._current(tx, shop_id, sale_ref)
