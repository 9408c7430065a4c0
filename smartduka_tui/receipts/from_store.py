"""A paid sale's receipt, read from the till's store (read-only: safe beside a running app)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from smartduka_tui.model import AttemptFlag, AttemptState, SaleState
from smartduka_tui.receipts.model import Receipt, ReceiptError, ReceiptLine, Tender, TenderKind

if TYPE_CHECKING:
    from smartduka_tui.store import Sale, Store

SALE_LINE = "Sale total"
"""The one line of a sale rung up as a total (the till keeps no item list yet)."""


async def receipt_for_sale(store: Store, shop_id: str, sale_ref: str) -> Receipt:
    """The receipt of `sale_ref`: from its sale record (lines, every tender, the change)
    when the till kept one; for a sale paid before sales were kept, from the payment that
    paid it: an STK attempt (its M-Pesa receipt number) or a direct C2B payment attached to
    it (its TransID).

    ReceiptError for a blank sale number, a sale this shop does not have, or one not paid.
    A second payment of the same sale (a duplicate attempt, or STK and C2B both) is money to
    refund, not a tender: the first payment is the receipt's.
    """
    sale_ref = sale_ref.strip()
    if not sale_ref:
        raise ReceiptError("give a sale number, e.g. S1001")
    shop = await store.shops.get(shop_id)
    if shop is None:
        raise ReceiptError(f"there is no shop {shop_id!r} on this till")
    sale = await store.sales.get(shop_id, sale_ref)
    if sale is not None:
        return _from_sale(shop.name, sale)
    attempts = await store.attempts.for_sale(shop_id, sale_ref)
    direct = await store.c2b.for_sale(shop_id, sale_ref)
    if not attempts and not direct:
        raise ReceiptError(f"there is no sale {sale_ref!r} in shop {shop_id!r}")
    payments: list[tuple[datetime, str, Tender]] = [
        (
            attempt.completed_at or attempt.updated_at,
            attempt.till_id,
            Tender(TenderKind.MPESA_STK, attempt.amount, attempt.receipt_number),
        )
        for attempt in attempts
        if attempt.state is AttemptState.COMPLETED
        and not attempt.flags & AttemptFlag.DUPLICATE_PAYMENT
    ]
    payments += [
        (
            record.attached_at or record.paid_at,
            record.attached_till or "",
            Tender(TenderKind.MPESA_C2B, record.amount, record.trans_id),
        )
        for record in direct
    ]
    if not payments:
        last = attempts[-1]
        raise ReceiptError(
            f"sale {sale_ref!r} is not paid (its last payment is {last.state.value.lower()}), "
            "so it has no receipt"
        )
    paid_at, till_id, tender = min(payments, key=lambda payment: payment[0])
    return Receipt(
        shop_name=shop.name,
        sale_ref=sale_ref,
        till_id=till_id,
        cashier=None,
        paid_at=paid_at,
        lines=(ReceiptLine(SALE_LINE, 1, tender.amount),),
        tenders=(tender,),
    )


def _from_sale(shop_name: str, sale: Sale) -> Receipt:
    """A kept sale's receipt: a cash tender shows the cash given, and the change is what
    every cash tender gave back."""
    if sale.state is not SaleState.PAID:
        owed = f" (KES {sale.owed:,} of KES {sale.total:,} still owed)" if sale.owed else ""
        raise ReceiptError(
            f"sale {sale.sale_ref!r} is {sale.state.value.lower()}{owed}, so it has no receipt"
        )
    lines = tuple(ReceiptLine(li.description, li.quantity, li.unit_price) for li in sale.lines)
    tenders = tuple(
        Tender(
            tender.kind,
            tender.cash_given if tender.cash_given is not None else tender.amount,
            tender.receipt_number,
        )
        for tender in sale.tenders
    )
    return Receipt(
        shop_name=shop_name,
        sale_ref=sale.sale_ref,
        till_id=sale.till_id,
        cashier=None,
        paid_at=sale.closed_at or sale.updated_at,
        lines=lines or (ReceiptLine(SALE_LINE, 1, sale.total),),
        tenders=tenders,
        change=sum(tender.change_given or 0 for tender in sale.tenders),
    )
