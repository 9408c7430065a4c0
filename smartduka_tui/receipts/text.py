"""The plain-text receipt: what the screen, `smartduka receipt` and the printer all show."""

from __future__ import annotations

from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.receipts.model import Receipt

RECEIPT_COLUMNS = 32
"""Characters per line of a 58 mm roll in the printer's standard font (the narrowest common
one, so the same text fits an 80 mm roll too)."""


def shillings(amount: int) -> str:
    return f"KES {amount:,}"


def pair(left: str, right: str, columns: int) -> str:
    """`left` and `right` on one line, `left` cut short if both do not fit."""
    room = columns - len(right) - 1
    if len(left) > room:
        left = left[: max(room - 1, 0)] + "~"
    return f"{left:<{room}} {right}"


def render_text(receipt: Receipt, columns: int = RECEIPT_COLUMNS) -> str:
    """The receipt as lines of at most `columns` characters, ending in a newline."""
    rule = "-" * columns
    when = receipt.paid_at.astimezone(KENYA_TZ).strftime("%Y-%m-%d %H:%M:%S EAT")
    out: list[str] = []
    if receipt.copy:
        out.append("*** COPY ***".center(columns).rstrip())
    out.append(receipt.shop_name[:columns].center(columns).rstrip())
    out.append(rule)
    out.append(pair("Sale", receipt.sale_ref, columns))
    out.append(pair("Till", receipt.till_id, columns))
    if receipt.cashier:
        out.append(pair("Cashier", receipt.cashier, columns))
    out.append(when)
    out.append(rule)
    for line in receipt.lines:
        if line.quantity == 1:
            out.append(pair(line.description, shillings(line.amount), columns))
        else:
            out.append(line.description[:columns])
            detail = f"  {line.quantity} x {line.unit_price:,}"
            out.append(pair(detail, shillings(line.amount), columns))
    out.append(rule)
    out.append(pair("TOTAL", shillings(receipt.total), columns))
    for tender in receipt.tenders:
        out.append(pair(tender.kind.label, shillings(tender.amount), columns))
        if tender.reference:
            out.append(f"  Receipt {tender.reference}"[:columns])
    out.append(pair("Change", shillings(receipt.change), columns))
    out.append(rule)
    out.append("Thank you".center(columns).rstrip())
    if receipt.copy:
        out.append("*** COPY ***".center(columns).rstrip())
    return "\n".join(out) + "\n"
