"""The X and Z reports of a shift, as data (and the JSON a Z report is kept as). Pure: no
store, no I/O, no clock. Its words (text, CSV) are the report renderer's,
`smartduka_tui/receipts/shift_report.py`.

`build_report` turns what the store holds for one shift (its tenders, the pulled statement's
receipts for the same window, when the statement was last pulled) into a `ShiftReport`:

- sales by tender kind (count and amount); voided and refunded sales are left out of them
  and listed (their money went back), and sales still part paid or abandoned are named;
- the cash drawer: float + cash taken (net of change) - cash refunds (the cash of the voided
  and refunded sales) = expected; the counted figure and the difference in plain words;
- the till's own M-Pesa tenders beside the statement's receipts for the window and shortcode,
  and the receipts that are in one and not the other.

Money is whole shillings throughout; times are aware datetimes (the renderer shows Kenya time).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from smartduka_tui.model import COUNTED_SALE_STATES, SaleState, TenderKind

STALE_AFTER = timedelta(minutes=30)
"""A statement last pulled longer than this before the report's end is called stale (the
reconciler pulls every 30 minutes by default, `pull.interval_s`)."""


class ReportKind(StrEnum):
    X = "X"
    """Mid-shift: what the drawer should hold now. Changes nothing."""
    Z = "Z"
    """At close, with the cash counted and the shift's Z number."""


class TenderFacts(Protocol):
    """What the report reads of one tender of the till's sales in the shift's window (the
    store's rows have it). `amount` is what it pays toward the sale: for cash, the cash
    handed over less the change, so it is also what it left in the drawer."""

    @property
    def sale_ref(self) -> str: ...
    @property
    def sale_state(self) -> SaleState: ...
    @property
    def sale_total(self) -> int: ...
    @property
    def kind(self) -> TenderKind: ...
    @property
    def amount(self) -> int: ...
    @property
    def receipt_number(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """A receipt of the pulled M-Pesa statement in the shift's window."""

    receipt: str
    amount: int
    paid_at: datetime


@dataclass(frozen=True, slots=True)
class TenderTotal:
    kind: TenderKind
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class LeftOutSale:
    sale_ref: str
    state: SaleState
    total: int


@dataclass(frozen=True, slots=True)
class Receipted:
    """A receipt number and its amount, on one side of the M-Pesa comparison only."""

    receipt: str
    amount: int


@dataclass(frozen=True, slots=True)
class StatementSide:
    """The statement's half of the M-Pesa comparison."""

    shortcode: str | None
    """None: the shop has no shortcode of its own (the platform's paybill): nothing to pull."""
    last_pulled: datetime | None
    count: int
    amount: int
    only_statement: tuple[Receipted, ...]
    only_till: tuple[Receipted, ...]
    other_tills: int
    """Statement receipts in the window that another till of the shop holds (left out)."""
    stale: bool


@dataclass(frozen=True, slots=True)
class ShiftReport:
    kind: ReportKind
    shop_name: str
    till_id: str
    shift_id: int
    cashier: str
    opened_at: datetime
    until: datetime
    z_number: int | None
    opening_float: int
    by_tender: tuple[TenderTotal, ...]
    sales: int
    """Sales in the totals (paid, part paid or abandoned part paid)."""
    part_paid: tuple[tuple[str, SaleState], ...]
    """Sales in the totals that are not paid in full: still open, or abandoned."""
    left_out: tuple[LeftOutSale, ...]
    cash_taken: int
    cash_refunds: int
    counted_cash: int | None
    mpesa_count: int
    mpesa_amount: int
    mpesa_without_receipt: tuple[str, ...]
    statement: StatementSide

    @property
    def expected_cash(self) -> int:
        return self.opening_float + self.cash_taken - self.cash_refunds

    @property
    def takings(self) -> int:
        return sum(total.amount for total in self.by_tender)

    @property
    def difference(self) -> int | None:
        """Counted less expected: positive over, negative short; None before the count."""
        return None if self.counted_cash is None else self.counted_cash - self.expected_cash


def build_report(
    *,
    kind: ReportKind,
    shop_name: str,
    till_id: str,
    shift_id: int,
    cashier: str,
    opened_at: datetime,
    until: datetime,
    opening_float: int,
    tenders: Sequence[TenderFacts],
    counted_cash: int | None = None,
    z_number: int | None = None,
    shortcode: str | None = None,
    statement: Sequence[StatementEntry] = (),
    other_till_receipts: Iterable[str] = (),
    last_pulled: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> ShiftReport:
    """The report of one shift from its tenders and the statement for its window.

    `other_till_receipts` are statement receipts that another till of the shop holds: they
    are neither this till's nor missing from it. The statement is stale when it was never
    pulled, or last pulled more than `stale_after` before the window's end (its last
    receipts may be missing).
    """
    totals: dict[TenderKind, list[int]] = {}
    left_out: dict[str, LeftOutSale] = {}
    counted: set[str] = set()
    part_paid: dict[str, SaleState] = {}
    cash_taken = cash_refunds = 0
    till_mpesa: dict[str, int] = {}
    without_receipt: set[str] = set()
    for tender in tenders:
        cash_in = tender.amount if tender.kind is TenderKind.CASH else 0
        cash_taken += cash_in
        if tender.sale_state in COUNTED_SALE_STATES:
            counted.add(tender.sale_ref)
            count_amount = totals.setdefault(tender.kind, [0, 0])
            count_amount[0] += 1
            count_amount[1] += tender.amount
            if tender.sale_state is not SaleState.PAID:
                part_paid[tender.sale_ref] = tender.sale_state
        else:
            cash_refunds += cash_in
            left_out[tender.sale_ref] = LeftOutSale(
                tender.sale_ref, tender.sale_state, tender.sale_total
            )
        if tender.kind.is_mpesa:
            # The money moved whatever became of the sale: it is on the statement either way.
            if tender.receipt_number:
                till_mpesa[tender.receipt_number] = tender.amount
            else:
                without_receipt.add(tender.sale_ref)
    by_tender = tuple(
        TenderTotal(kind, totals[kind][0], totals[kind][1]) for kind in TenderKind if kind in totals
    )
    others = set(other_till_receipts)
    pulled = {e.receipt: e.amount for e in statement if e.receipt not in others}
    side = StatementSide(
        shortcode=shortcode,
        last_pulled=last_pulled,
        count=len(pulled),
        amount=sum(pulled.values()),
        only_statement=tuple(
            Receipted(r, a) for r, a in sorted(pulled.items()) if r not in till_mpesa
        ),
        only_till=tuple(Receipted(r, a) for r, a in sorted(till_mpesa.items()) if r not in pulled),
        other_tills=sum(1 for e in statement if e.receipt in others),
        stale=shortcode is not None and (last_pulled is None or last_pulled < until - stale_after),
    )
    return ShiftReport(
        kind=kind,
        shop_name=shop_name,
        till_id=till_id,
        shift_id=shift_id,
        cashier=cashier,
        opened_at=opened_at,
        until=until,
        z_number=z_number,
        opening_float=opening_float,
        by_tender=by_tender,
        sales=len(counted),
        part_paid=tuple(sorted(part_paid.items())),
        left_out=tuple(left_out[sale] for sale in sorted(left_out)),
        cash_taken=cash_taken,
        cash_refunds=cash_refunds,
        counted_cash=counted_cash,
        mpesa_count=len(till_mpesa),
        mpesa_amount=sum(till_mpesa.values()),
        mpesa_without_receipt=tuple(sorted(without_receipt)),
        statement=side,
    )


# ---------------------------------------------------------------------- JSON
# A Z report is kept as it was at close (a later refund must not rewrite a closed day), so it
# is stored with its shift as JSON and read back from it; `--json` prints the same shape.


def report_to_dict(report: ShiftReport) -> dict[str, Any]:
    side = report.statement
    return {
        "kind": report.kind.value,
        "shop_name": report.shop_name,
        "till_id": report.till_id,
        "shift_id": report.shift_id,
        "cashier": report.cashier,
        "opened_at": report.opened_at.isoformat(),
        "until": report.until.isoformat(),
        "z_number": report.z_number,
        "opening_float": report.opening_float,
        "by_tender": [[t.kind.value, t.count, t.amount] for t in report.by_tender],
        "sales": report.sales,
        "takings": report.takings,
        "part_paid": [[sale, state.value] for sale, state in report.part_paid],
        "left_out": [[s.sale_ref, s.state.value, s.total] for s in report.left_out],
        "cash_taken": report.cash_taken,
        "cash_refunds": report.cash_refunds,
        "expected_cash": report.expected_cash,
        "counted_cash": report.counted_cash,
        "difference": report.difference,
        "mpesa_count": report.mpesa_count,
        "mpesa_amount": report.mpesa_amount,
        "mpesa_without_receipt": list(report.mpesa_without_receipt),
        "statement": {
            "shortcode": side.shortcode,
            "last_pulled": None if side.last_pulled is None else side.last_pulled.isoformat(),
            "count": side.count,
            "amount": side.amount,
            "only_statement": [[r.receipt, r.amount] for r in side.only_statement],
            "only_till": [[r.receipt, r.amount] for r in side.only_till],
            "other_tills": side.other_tills,
            "stale": side.stale,
        },
    }


def report_to_json(report: ShiftReport) -> str:
    return json.dumps(report_to_dict(report), sort_keys=True, separators=(",", ":"))


def report_from_json(text: str) -> ShiftReport:
    data = json.loads(text)
    side = data["statement"]
    return ShiftReport(
        kind=ReportKind(data["kind"]),
        shop_name=data["shop_name"],
        till_id=data["till_id"],
        shift_id=data["shift_id"],
        cashier=data["cashier"],
        opened_at=datetime.fromisoformat(data["opened_at"]),
        until=datetime.fromisoformat(data["until"]),
        z_number=data["z_number"],
        opening_float=data["opening_float"],
        by_tender=tuple(TenderTotal(TenderKind(k), c, a) for k, c, a in data["by_tender"]),
        sales=data["sales"],
        part_paid=tuple((sale, SaleState(state)) for sale, state in data["part_paid"]),
        left_out=tuple(LeftOutSale(r, SaleState(st), t) for r, st, t in data["left_out"]),
        cash_taken=data["cash_taken"],
        cash_refunds=data["cash_refunds"],
        counted_cash=data["counted_cash"],
        mpesa_count=data["mpesa_count"],
        mpesa_amount=data["mpesa_amount"],
        mpesa_without_receipt=tuple(data["mpesa_without_receipt"]),
        statement=StatementSide(
            shortcode=side["shortcode"],
            last_pulled=None
            if side["last_pulled"] is None
            else datetime.fromisoformat(side["last_pulled"]),
            count=side["count"],
            amount=side["amount"],
            only_statement=tuple(Receipted(r, a) for r, a in side["only_statement"]),
            only_till=tuple(Receipted(r, a) for r, a in side["only_till"]),
            other_tills=side["other_tills"],
            stale=side["stale"],
        ),
    )
