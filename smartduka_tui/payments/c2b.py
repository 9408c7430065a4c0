"""Direct payments (C2B) at the till: confirmations kept as they arrive from the relay's feed,
the one a sale most likely is (same amount, near in time, alone), and attaching one to a sale.

The relay arbitrates: a payment is attached to one sale only, shop-wide, so an attach first
claims it at the relay and only a granted claim is written here (with its audit entry).

Whoever keeps confirmations (the relay client's feed) tells the desk with `arrived()`, and the
desk tells its listeners (the checkout's panel) at once, so a payment shows on the checkout as
soon as it is stored, not at the next tick of the app's clock.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from smartduka_tui.clock import Clock
from smartduka_tui.model import Actor
from smartduka_tui.mpesa.statement import QrCodeResponse, StatementParseError, parse_c2b_payment
from smartduka_tui.payments.gateway import GatewayError
from smartduka_tui.payments.sales import owed_for_direct, record_direct_payment

# Re-exported: the faces (screens, commands) take these from here, not from the store.
from smartduka_tui.store.c2b import C2BAttachError as C2BAttachError
from smartduka_tui.store.c2b import C2BRecord as C2BRecord
from smartduka_tui.store.errors import NotFoundError
from smartduka_tui.store.store import Store

log = logging.getLogger(__name__)

# A customer who paid the till directly tells the cashier at once; ten minutes is generous.
SUGGEST_WINDOW = timedelta(minutes=10)
_SALE_REF = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    """The relay's word on a claim: granted, or which sale and till hold the payment."""

    granted: bool
    sale_ref: str
    till_id: str
    message: str = ""


class ClaimUnavailable(Exception):
    """The relay could not be asked (unreachable, or an answer we cannot read)."""


Claim = Callable[[str, str], Awaitable[ClaimAnswer]]
# (sale reference, amount) -> M-Pesa's Dynamic QR answer for it.
MakeQr = Callable[[str, int], Awaitable[QrCodeResponse]]


class QrUnavailable(Exception):
    """No QR code for this sale; the message says why, in the cashier's words."""


@dataclass(frozen=True, slots=True)
class SaleQr:
    """A sale's Dynamic QR drawn for the terminal (half blocks, fits 80x24)."""

    sale_ref: str
    amount: int
    lines: tuple[str, ...]
    request_id: str


async def receive(store: Store, shop_id: str, body: bytes) -> tuple[C2BRecord, bool]:
    """Keep one confirmation from the feed; (row, is_new). StatementParseError if bad."""
    payment = parse_c2b_payment(body)
    async with store.write() as tx:
        return await store.c2b.record(tx, shop_id, payment, hashlib.sha256(body).hexdigest())


class C2BDesk:
    """The cashier's view of direct payments for one till."""

    def __init__(
        self,
        store: Store,
        shop_id: str,
        till_id: str,
        clock: Clock,
        claim: Claim,
        *,
        make_qr: MakeQr | None = None,
    ) -> None:
        self._make_qr = make_qr
        self._store = store
        self._shop_id = shop_id
        self._till_id = till_id
        self._clock = clock
        self._claim = claim
        self._listeners: list[Callable[[], None]] = []

    def on_arrival(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever a direct payment has been stored here; returns a function
        that unsubscribes. Listeners are called in the event loop: they post, never block."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def arrived(self) -> None:
        """A direct payment was just stored (the feed calls this after committing it)."""
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("a direct payments listener failed")

    async def unattached(self, limit: int = 50) -> list[C2BRecord]:
        return await self._store.c2b.recent(self._shop_id, unattached_only=True, limit=limit)

    async def recent(self, limit: int = 50) -> list[C2BRecord]:
        return await self._store.c2b.recent(self._shop_id, limit=limit)

    async def suggest(self, amount: int, around: datetime | None = None) -> C2BRecord | None:
        """The one unattached payment of exactly `amount` within the window, if only one.

        The window is checked against M-Pesa's TransTime and against when this till received
        the confirmation: M-Pesa's clock and the till's may differ by more than the window."""
        moment = around or self._clock.now()
        fits = [
            record
            for record in await self.unattached(limit=200)
            if record.amount == amount
            and (
                abs(record.paid_at - moment) <= SUGGEST_WINDOW
                or abs(record.received_at - moment) <= SUGGEST_WINDOW
            )
        ]
        return fits[0] if len(fits) == 1 else None

    @property
    def offers_qr(self) -> bool:
        return self._make_qr is not None

    async def sale_qr(self, sale_ref: str, amount: int) -> SaleQr:
        """The sale's QR for the customer to scan; the payment then shows on the checkout
        like any direct payment (same amount, in the window) and is attached the same way."""
        if self._make_qr is None:
            raise QrUnavailable("This till cannot show QR codes (its shop has no own shortcode).")
        # The image decoder (Pillow) loads with the first QR a cashier asks for, not the till.
        from smartduka_tui.mpesa.qr import QrImageError, qr_to_half_blocks

        try:
            answer = await self._make_qr(sale_ref, amount)
            lines = qr_to_half_blocks(answer.png())
        except (GatewayError, StatementParseError, QrImageError) as error:
            message = error.message if isinstance(error, GatewayError) else str(error)
            raise QrUnavailable(f"No QR code: {message}") from None
        return SaleQr(sale_ref, amount, tuple(lines), answer.request_id)

    async def attach(self, trans_id: str, sale_ref: str) -> C2BRecord:
        """Claim `trans_id` at the relay for `sale_ref`, then record it; C2BAttachError (with
        words, nothing changed here) when it is unknown, taken, or the relay cannot say."""
        trans_id = trans_id.strip().upper()
        if not _SALE_REF.fullmatch(sale_ref):
            raise C2BAttachError("sale_ref", "must be 1 to 64 letters, digits, '.', '_' or '-'")
        current = await self._store.c2b.get(self._shop_id, trans_id)
        if current is None:
            raise C2BAttachError("trans_id", f"no direct payment {trans_id} has reached this till")
        if current.sale_ref is not None and current.sale_ref != sale_ref:
            raise C2BAttachError(
                "trans_id", f"{trans_id} is already attached to sale {current.sale_ref}"
            )
        unfit = await owed_for_direct(self._store, self._shop_id, sale_ref, current.amount)
        if unfit is not None and current.sale_ref is None:
            raise C2BAttachError("amount", unfit)
        try:
            answer = await self._claim(trans_id, sale_ref)
        except ClaimUnavailable as error:
            raise C2BAttachError("relay", f"not attached: {error}") from None
        async with self._store.write() as tx:
            try:
                if answer.granted:
                    attached = await self._store.c2b.attach(
                        tx, self._shop_id, trans_id, sale_ref, self._till_id
                    )
                    if current.sale_ref is None:
                        # The sale's tender, in the transaction that attaches the payment.
                        await record_direct_payment(self._store, tx, attached, self._till_id)
                    return attached
                # Another till won: note where the money went, so no one here offers it again.
                await self._store.c2b.attach(
                    tx,
                    self._shop_id,
                    trans_id,
                    answer.sale_ref,
                    answer.till_id,
                    actor=Actor.SYSTEM,
                )
            except NotFoundError as error:
                raise C2BAttachError("trans_id", str(error)) from None
        raise C2BAttachError("trans_id", answer.message)
