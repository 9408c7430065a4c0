"""The X and Z reports as words: the text the screen, `smartduka shift` and the printer show
(42 columns, an 80 mm roll, and an 80-column screen) and the CSV export (one table with a
header row). The report itself is data (`payments/shift_report.py`); this renderer is the only
place its times become Kenya time and its figures words, as `text.py` is for a sale's receipt.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from functools import partial

from smartduka_tui.model import SaleState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.shift_report import ReportKind, ShiftReport, StatementSide
from smartduka_tui.receipts.text import pair as _pair
from smartduka_tui.receipts.text import shillings as _kes

REPORT_COLUMNS = 42
"""Characters per line of an 80 mm roll in the printer's standard font."""


def shillings(amount: int) -> str:
    """A receipt's `KES 1,250`, with a report's negative figures as `-KES 50`."""
    return f"-{_kes(-amount)}" if amount < 0 else _kes(amount)


def difference_words(difference: int | None) -> str:
    """The drawer against what it should hold, in plain words."""
    if difference is None:
        return "counted at close"
    if difference == 0:
        return "none, the drawer matches"
    if difference > 0:
        return f"KES {difference:,} over"
    return f"KES {-difference:,} short"


def _kenya(moment: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(KENYA_TZ).strftime(fmt)


def _row3(label: str, count: int | str, amount: str, columns: int) -> str:
    return _pair(label, f"{count!s:>5} {amount:>13}", columns)


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
    pair = partial(_pair, columns=columns)
    row3 = partial(_row3, columns=columns)
    title = (
        "X REPORT (mid-shift)"
        if report.kind is ReportKind.X
        else f"Z REPORT (shift closed)  Z {report.z_number}"
    )
    out = [title.center(columns).rstrip(), report.shop_name[:columns].center(columns).rstrip()]
    out.append(rule)
    out.append(pair("Till", report.till_id))
    out.append(pair("Cashier", report.cashier))
    out.append(pair("Opened", _kenya(report.opened_at) + " EAT"))
    closed_label = "Closed" if report.kind is ReportKind.Z else "Up to"
    out.append(pair(closed_label, _kenya(report.until) + " EAT"))
    out.append(rule)
    out.append(row3("SALES BY TENDER", "count", "amount"))
    for total in report.by_tender:
        out.append(row3(total.kind.label, total.count, shillings(total.amount)))
    if not report.by_tender:
        out.append("  no sales yet")
    out.append(row3("Total", report.sales, shillings(report.takings)))
    for sale_ref, state in report.part_paid:
        words = "part paid, open" if state is SaleState.OPEN else "part paid, abandoned"
        out.append(pair(f"  {sale_ref}", words))
    if report.left_out:
        out.append("Left out (money given back):")
        for sale in report.left_out:
            out.append(pair(f"  {sale.sale_ref} {sale.state.lower()}", shillings(sale.total)))
    out.append(rule)
    out.append("CASH DRAWER")
    out.append(pair("Float", shillings(report.opening_float)))
    out.append(pair("Cash taken (net of change)", shillings(report.cash_taken)))
    out.append(pair("Cash refunds", shillings(-report.cash_refunds)))
    out.append(pair("Expected in the drawer", shillings(report.expected_cash)))
    if report.counted_cash is not None:
        out.append(pair("Counted", shillings(report.counted_cash)))
    out.append(pair("Difference", difference_words(report.difference)))
    out.append(rule)
    side = report.statement
    out.append(row3("M-PESA", "count", "amount"))
    out.append(row3("This till", report.mpesa_count, shillings(report.mpesa_amount)))
    if side.shortcode is not None:
        out.append(row3(f"Statement {side.shortcode}", side.count, shillings(side.amount)))
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
        out.extend(pair(f"  {r.receipt}", shillings(r.amount)) for r in side.only_till)
    if side.only_statement:
        out.append("On the statement, not on this till:")
        out.extend(pair(f"  {r.receipt}", shillings(r.amount)) for r in side.only_statement)
    if side.shortcode is not None and not side.only_till and not side.only_statement:
        out.append("Every receipt is on both.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- CSV

CSV_HEADER = ("section", "item", "count", "amount_kes", "note")


def csv_rows(report: ShiftReport) -> list[tuple[str, str, str, str, str]]:
    """The report as rows under CSV_HEADER: amounts in whole shillings, times ISO in UTC."""
    rows: list[tuple[str, str, str, str, str]] = [
        ("shift", "report", "", "", report.kind.value),
        ("shift", "z_number", "", "", _blank_or_str(report.z_number)),
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
        ("drawer", "counted", "", _blank_or_str(report.counted_cash), ""),
        (
            "drawer",
            "difference",
            "",
            _blank_or_str(report.difference),
            difference_words(report.difference),
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


def _blank_or_str(value: int | None) -> str:
    return "" if value is None else str(value)


def render_csv(report: ShiftReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return buffer.getvalue()


def closed_words(report: ShiftReport) -> str:
    """The one line after a shift closes, the same on the manager's screen and the CLI."""
    counted = report.counted_cash or 0
    return (
        f"Shift closed: Z {report.z_number}. Expected KES {report.expected_cash:,}, counted "
        f"KES {counted:,}: {difference_words(report.difference)}."
    )
