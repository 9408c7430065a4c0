"""The X and Z reports of a shift, as data, text and CSV. Pure: no store, no I/O, no clock.

`build_report` turns what the store holds for one shift (its tenders, the pulled statement's
receipts for the same window, when the statement was last pulled) into a `ShiftReport`:

- sales by tender kind (count and amount); voided and refunded sales are left out of them
  and listed (their money went back), and sales still part paid or abandoned are named;
- the cash drawer: float + cash taken (net of change) - cash refunds (the cash of the voided
  and refunded sales) = expected; the counted figure and the difference in plain words;
- the till's own M-Pesa tenders beside the statement's receipts for the window and shortcode,
  and the receipts that are in one and not the other.

Money is whole shillings throughout. The text fits a 42-column receipt roll (80 mm) and an
80-column screen; the CSV is one table with a header row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from smartduka_tui.model import COUNTED_SALE_STATES, SaleState, TenderKind
from smartduka_tui.mpesa.kenya_time import KENYA_TZ

STALE_AFTER = timedelta(minutes=30)
"""A statement last pulled longer than this before the report's end is called stale (the
reconciler pulls every 30 minutes by default, `pull.interval_s`)."""

REPORT_COLUMNS = 42
"""Characters per line of an 80 mm roll in the printer's standard font."""


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

    @property
    def difference_words(self) -> str:
        return difference_words(self.difference)


def shillings(amount: int) -> str:
    return f"-KES {-amount:,}" if amount < 0 else f"KES {amount:,}"


def difference_words(difference: int | None) -> str:
    """The drawer against what it should hold, in plain words."""
    if difference is None:
        return "counted at close"
    if difference == 0:
        return "none, the drawer matches"
    if difference > 0:
        return f"KES {difference:,} over"
    return f"KES {-difference:,} short"


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


# ---------------------------------------------------------------------- text


def _kenya(moment: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(KENYA_TZ).strftime(fmt)


def _pair(left: str, right: str, columns: int) -> str:
    room = columns - len(right) - 1
    if len(left) > room:
        left = left[: max(room - 1, 0)] + "~"
    return f"{left:<{room}} {right}"


def _row3(label: str, count: int | str, amount: str, columns: int) -> str:
    right = f"{count!s:>5} {amount:>13}"
    return _pair(label, right, columns)


def statement_words(side: StatementSide) -> str:
    """Where the statement stands, in one line."""
    if side.shortcode is None:
        return "No statement: the shop uses the platform's paybill"
    if side.last_pulled is None:
        return "Statement never pulled"
    when = _kenya(side.last_pulled, "%H:%M")
    if side.stale:
        return f"Statement not pulled since {when}"
    return f"Statement pulled at {when}"


def render_text(report: ShiftReport, columns: int = REPORT_COLUMNS) -> str:
    """The report as lines of at most `columns` characters, ending in a newline."""
    rule = "-" * columns
    title = (
        "X REPORT (mid-shift)"
        if report.kind is ReportKind.X
        else f"Z REPORT (shift closed)  Z {report.z_number}"
    )
    out = [title.center(columns).rstrip(), report.shop_name[:columns].center(columns).rstrip()]
    out.append(rule)
    out.append(_pair("Till", report.till_id, columns))
    out.append(_pair("Cashier", report.cashier, columns))
    out.append(_pair("Opened", _kenya(report.opened_at) + " EAT", columns))
    closed_label = "Closed" if report.kind is ReportKind.Z else "Up to"
    out.append(_pair(closed_label, _kenya(report.until) + " EAT", columns))
    out.append(rule)
    out.append(_row3("SALES BY TENDER", "count", "amount", columns))
    for total in report.by_tender:
        out.append(_row3(total.kind.label, total.count, shillings(total.amount), columns))
    if not report.by_tender:
        out.append("  no sales yet")
    out.append(_row3("Total", report.sales, shillings(report.takings), columns))
    for sale_ref, state in report.part_paid:
        words = "part paid, open" if state is SaleState.OPEN else "part paid, abandoned"
        out.append(_pair(f"  {sale_ref}", words, columns))
    if report.left_out:
        out.append("Left out (money given back):")
        for sale in report.left_out:
            out.append(
                _pair(f"  {sale.sale_ref} {sale.state.lower()}", shillings(sale.total), columns)
            )
    out.append(rule)
    out.append("CASH DRAWER")
    out.append(_pair("Float", shillings(report.opening_float), columns))
    out.append(_pair("Cash taken (net of change)", shillings(report.cash_taken), columns))
    out.append(_pair("Cash refunds", shillings(-report.cash_refunds), columns))
    out.append(_pair("Expected in the drawer", shillings(report.expected_cash), columns))
    if report.counted_cash is not None:
        out.append(_pair("Counted", shillings(report.counted_cash), columns))
    out.append(_pair("Difference", report.difference_words, columns))
    out.append(rule)
    side = report.statement
    out.append(_row3("M-PESA", "count", "amount", columns))
    out.append(_row3("This till", report.mpesa_count, shillings(report.mpesa_amount), columns))
    if side.shortcode is not None:
        out.append(
            _row3(f"Statement {side.shortcode}", side.count, shillings(side.amount), columns)
        )
    out.append(statement_words(side)[:columns])
    if side.other_tills == 1:
        out.append("(1 receipt of another till left out)")
    elif side.other_tills:
        out.append(f"({side.other_tills} receipts of other tills left out)"[:columns])
    if report.mpesa_without_receipt:
        out.append("No receipt number yet:")
        out.extend(f"  {sale}" for sale in report.mpesa_without_receipt)
    if side.only_till:
        out.append("On this till, not on the statement:")
        out.extend(_pair(f"  {r.receipt}", shillings(r.amount), columns) for r in side.only_till)
    if side.only_statement:
        out.append("On the statement, not on this till:")
        out.extend(
            _pair(f"  {r.receipt}", shillings(r.amount), columns) for r in side.only_statement
        )
    if side.shortcode is not None and not side.only_till and not side.only_statement:
        out.append("Every receipt is on both.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- CSV

CSV_HEADER = ("section", "item", "count", "amount_kes", "note")


def csv_rows(report: ShiftReport) -> list[tuple[str, str, str, str, str]]:
    """The report as rows under CSV_HEADER: amounts in whole shillings, times ISO in UTC."""
    rows: list[tuple[str, str, str, str, str]] = [
        ("shift", "report", "", "", report.kind.value),
        ("shift", "z_number", "", "", "" if report.z_number is None else str(report.z_number)),
        ("shift", "shop", "", "", report.shop_name),
        ("shift", "till", "", "", report.till_id),
        ("shift", "cashier", "", "", report.cashier),
        ("shift", "opened_at", "", "", report.opened_at.isoformat()),
        ("shift", "until", "", "", report.until.isoformat()),
    ]
    for total in report.by_tender:
        rows.append(
            ("tender", total.kind.value, str(total.count), str(total.amount), total.kind.label)
        )
    rows.append(("tender", "total", str(report.sales), str(report.takings), "sales"))
    for sale_ref, state in report.part_paid:
        rows.append(("part_paid", sale_ref, "", "", state.value))
    for sale in report.left_out:
        rows.append(("left_out", sale.sale_ref, "", str(sale.total), sale.state.value))
    rows += [
        ("drawer", "float", "", str(report.opening_float), ""),
        ("drawer", "cash_taken", "", str(report.cash_taken), "net of change"),
        ("drawer", "cash_refunds", "", str(report.cash_refunds), ""),
        ("drawer", "expected", "", str(report.expected_cash), ""),
        (
            "drawer",
            "counted",
            "",
            "" if report.counted_cash is None else str(report.counted_cash),
            "",
        ),
        (
            "drawer",
            "difference",
            "",
            "" if report.difference is None else str(report.difference),
            report.difference_words,
        ),
        ("mpesa", "till", str(report.mpesa_count), str(report.mpesa_amount), ""),
    ]
    side = report.statement
    if side.shortcode is not None:
        rows.append(
            ("mpesa", "statement", str(side.count), str(side.amount), statement_words(side))
        )
    for sale_ref in report.mpesa_without_receipt:
        rows.append(("mpesa_no_receipt", sale_ref, "", "", ""))
    for only in side.only_till:
        rows.append(("only_on_till", only.receipt, "", str(only.amount), ""))
    for only in side.only_statement:
        rows.append(("only_on_statement", only.receipt, "", str(only.amount), ""))
    return rows


def render_csv(report: ShiftReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


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
