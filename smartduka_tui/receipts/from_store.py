"""A paid sale's receipt, read from the till's store (read-only: safe beside a running app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smartduka_tui.receipts.model import Receipt, ReceiptError, ReceiptLine, Tender, TenderKind
from smartduka_tui.store.records import AttemptFlag, AttemptState

if TYPE_CHECKING:
    from smartduka_tui.store import Store

SALE_LINE = "Sale total"
"""The one line of a sale rung up as a total (the till has no item list yet)."""


async def receipt_for_sale(
    store: Store, shop_id: str, sale_ref: str, *, cashier: str | None = None
) -> Receipt:
    """The receipt of `sale_ref`, from the attempt that paid it.

    ReceiptError for a blank sale number, a sale this shop does not have, or one not paid.
    A second payment of the same sale (flagged duplicate) is money to refund, not a tender.
    """
    sale_ref = sale_ref.strip()
    if not sale_ref:
        raise ReceiptError("give a sale number, e.g. S1001")
    shop = await store.shops.get(shop_id)
    if shop is None:
        raise ReceiptError(f"there is no shop {shop_id!r} on this till")
    attempts = await store.attempts.for_sale(shop_id, sale_ref)
    if not attempts:
        raise ReceiptError(f"there is no sale {sale_ref!r} in shop {shop_id!r}")
    paid = [
        attempt
        for attempt in attempts
        if attempt.state is AttemptState.COMPLETED
        and not attempt.flags & AttemptFlag.DUPLICATE_PAYMENT
    ]
    if not paid:
        last = attempts[-1]
        raise ReceiptError(
            f"sale {sale_ref!r} is not paid (its last payment is {last.state.value.lower()}), "
            "so it has no receipt"
        )
    attempt = paid[0]
    return Receipt(
        shop_name=shop.name,
        sale_ref=sale_ref,
        till_id=attempt.till_id,
        cashier=cashier,
        paid_at=attempt.completed_at or attempt.updated_at,
        lines=(ReceiptLine(SALE_LINE, 1, attempt.amount),),
        tenders=(Tender(TenderKind.MPESA_STK, attempt.amount, attempt.receipt_number),),
    )
