"""The receipt desk: what the app and `smartduka receipt` call to show, print and reprint.

A receipt is rebuilt from the store each time it is asked for, so a print that fails loses
nothing: the same receipt prints again later. A reprint is marked COPY and audited, in its own
transaction, only once the printer took it. Printing blocks on the device, so it runs on a
worker thread and never holds up the caller's event loop (the sale goes on meanwhile).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

from smartduka_tui.config import PrinterKind
from smartduka_tui.model import Actor, AttemptFlag, AttemptState, AuditAction, SaleState
from smartduka_tui.receipts.from_store import receipt_for_sale
from smartduka_tui.receipts.model import Receipt
from smartduka_tui.store.records import AttemptFilter

if TYPE_CHECKING:
    from smartduka_tui.config import PrinterSettings
    from smartduka_tui.printing import PrinterStatus
    from smartduka_tui.store import Store

REPRINT_ACTION = AuditAction.RECEIPT_REPRINTED


class ReceiptDesk:
    """One till's receipts and its printer."""

    def __init__(self, store: Store, shop_id: str, till_id: str, printer: PrinterSettings):
        self._store = store
        self.shop_id = shop_id
        self.till_id = till_id
        self.printer = printer

    @property
    def configured(self) -> bool:
        return self.printer.kind is not PrinterKind.NONE

    async def receipt(self, sale_ref: str) -> Receipt:
        """The receipt of a paid sale of this shop; ReceiptError saying why there is none."""
        return await receipt_for_sale(self._store, self.shop_id, sale_ref)

    async def last_paid_sale(self) -> str | None:
        """The sale number of this till's newest paid sale (the one a "reprint" means): by
        M-Pesa prompt, a direct payment this till attached, or cash."""
        newest: tuple[datetime, str] | None = None
        direct = await self._store.c2b.last_attached(self.shop_id, self.till_id)
        if direct is not None and direct.sale_ref is not None:
            newest = (direct.attached_at or direct.paid_at, direct.sale_ref)
        page = await self._store.attempts.history(
            self.shop_id,
            AttemptFilter(
                states=frozenset({AttemptState.COMPLETED}),
                till_id=self.till_id,
                include_resolved=True,
            ),
            limit=20,
        )
        for sale in await self._store.sales.for_till(
            self.shop_id, self.till_id, states={SaleState.PAID}, limit=20
        ):
            closed = (sale.closed_at or sale.updated_at, sale.sale_ref)
            if newest is None or closed[0] > newest[0]:
                newest = closed
        for attempt in page.items:
            if not attempt.flags & AttemptFlag.DUPLICATE_PAYMENT:
                paid = (attempt.completed_at or attempt.updated_at, attempt.sale_ref)
                if newest is None or paid[0] > newest[0]:
                    newest = paid
                break
        return None if newest is None else newest[1]

    async def status(self) -> PrinterStatus:
        """How the printer is (asked on a worker thread: a network printer may take its
        timeout to answer)."""
        from smartduka_tui.printing import printer_status

        return await asyncio.to_thread(printer_status, self.printer)

    async def print(self, sale_ref: str, *, copy: bool, via: str) -> Receipt:
        """Print the sale's receipt (marked COPY and audited when `copy`) and return what was
        printed. ReceiptError for a sale with no receipt, PrinterError when the printer did
        not take it (nothing is audited then)."""
        from smartduka_tui.printing import print_receipt

        receipt = await self.receipt(sale_ref)
        if copy:
            receipt = receipt.as_copy()
        await asyncio.to_thread(print_receipt, self.printer, receipt)
        if copy:
            async with self._store.write() as tx:
                await self._store.audit.append(
                    tx,
                    actor=Actor.CASHIER,
                    action=REPRINT_ACTION,
                    shop_id=self.shop_id,
                    detail={"sale_ref": receipt.sale_ref, "till_id": self.till_id, "via": via},
                )
        return receipt
