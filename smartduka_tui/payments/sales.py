"""Sales and their tenders: the rules of a whole sale at the counter (issue #15).

A sale has a total in whole shillings and is paid by tenders: cash (the amount given, the
change), an M-Pesa prompt (STK) and a direct M-Pesa payment (C2B), in any order. It is PAID
only when its tenders add up to the total exactly; each tender is written in the same
transaction as the payment it records (`record_paid_attempt` inside the engine's transaction
that completes an attempt, `record_direct_payment` inside the one that attaches a C2B payment,
`SaleDesk.take_cash` for cash), with its audit entry.

A sale left part paid (cleared at the checkout, or found open when the till starts) is
ABANDONED and goes on the manager's problem list saying what was paid, by what, and what is
owed. A paid cash sale may be voided or refunded with the manager PIN and a note; M-Pesa money
goes back only through the reversal flow, never by a void.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from smartduka_tui.model import (
    Actor,
    AttemptFlag,
    AttemptState,
    ProblemKind,
    SaleState,
    TenderKind,
    TenderSums,
)
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.api import PaymentError
from smartduka_tui.payments.shifts import cash_refusal
from smartduka_tui.store.errors import VaultError
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.store.records import Attempt
from smartduka_tui.store.sales import NewTender, Sale, SaleLine, SaleStateError, SaleTender
from smartduka_tui.store.secret import Secret as Secret  # re-exported: the faces name it

if TYPE_CHECKING:
    from smartduka_tui.clock import Clock
    from smartduka_tui.store.c2b import C2BRecord
    from smartduka_tui.store.db import WriteTx
    from smartduka_tui.store.store import Store

log = logging.getLogger(__name__)

MAX_NOTE = 500
MAX_CASH = 10_000_000
"""More cash than any counter takes at once: a typing slip, refused before it is a tender."""


class SaleRefused(PaymentError):
    """A tender, void or refund the sale's rules do not allow; nothing was changed. `field`
    names what to put right (`cash_given`, `part`, `pin`, `note`, `sale_ref`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class TenderView:
    kind: TenderKind
    amount: int
    """What it pays toward the total."""
    cash_given: int | None
    change_given: int | None
    receipt: str | None
    at: datetime
    reversed: bool = False
    """M-Pesa's reversal gave this tender's money back."""


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    quantity: int
    unit_price: int


@dataclass(frozen=True, slots=True)
class SaleView(TenderSums):
    """A sale as the faces see it (no store types beyond this module)."""

    sale_ref: str
    till_id: str
    total: int
    state: SaleState
    tenders: tuple[TenderView, ...]
    lines: tuple[LineView, ...]
    opened_at: datetime
    closed_at: datetime | None
    note: str | None

    @property
    def change(self) -> int:
        return sum(t.change_given or 0 for t in self.tenders)

    @property
    def is_open(self) -> bool:
        return self.state is SaleState.OPEN

    @property
    def part_paid(self) -> bool:
        return self.is_open and bool(self.tenders)

    @property
    def mpesa_tenders(self) -> tuple[TenderView, ...]:
        return tuple(t for t in self.tenders if t.kind.is_mpesa)

    @property
    def awaiting_reversal(self) -> tuple[TenderView, ...]:
        """A refunded sale's M-Pesa tenders whose reversal has not yet given the money back:
        a refund returns only the cash; M-Pesa goes back by reversal (V, manager only)."""
        if self.state is not SaleState.REFUNDED:
            return ()
        return tuple(t for t in self.mpesa_tenders if not t.reversed)


@dataclass(frozen=True, slots=True)
class CashTaken:
    """A cash tender taken: the sale as it now is, and the change to hand back."""

    sale: SaleView
    part: int
    given: int
    change: int

    @property
    def completed(self) -> bool:
        return self.sale.state is SaleState.PAID


def sale_view(sale: Sale) -> SaleView:
    return SaleView(
        sale_ref=sale.sale_ref,
        till_id=sale.till_id,
        total=sale.total,
        state=sale.state,
        tenders=tuple(_tender_view(t) for t in sale.tenders),
        lines=tuple(LineView(li.description, li.quantity, li.unit_price) for li in sale.lines),
        opened_at=sale.opened_at,
        closed_at=sale.closed_at,
        note=sale.note,
    )


def _tender_view(tender: SaleTender) -> TenderView:
    return TenderView(
        kind=tender.kind,
        amount=tender.amount,
        cash_given=tender.cash_given,
        change_given=tender.change_given,
        receipt=tender.receipt_number,
        at=tender.at,
        reversed=tender.reversed,
    )


def _tenders_detail(sale: Sale) -> list[dict[str, Any]]:
    return [
        {"kind": t.kind.value, "amount": t.amount, "receipt": t.receipt_number}
        for t in sale.tenders
    ]


def check_cash(owed: int, part: int, given: int) -> None:
    """The cash tender's numbers against what the sale still owes; SaleRefused saying what
    to put right. `part` is what the cash pays toward the sale, `given` the cash handed over."""
    if part < 1:
        raise SaleRefused(
            "part", "A part of KES 0 pays nothing: type the part paid in cash, at least KES 1."
        )
    if part > owed:
        raise SaleRefused(
            "part",
            f"KES {part:,} is more than the KES {owed:,} still owed: the tenders must add up "
            "to the total exactly. Type at most the amount owed.",
        )
    if given > MAX_CASH:
        raise SaleRefused("cash_given", f"KES {given:,} is more cash than a till takes at once.")
    if given < part:
        if part == owed:
            raise SaleRefused(
                "cash_given",
                f"KES {given:,} given is less than the KES {owed:,} still owed. To take part "
                "in cash and the rest by M-Pesa, type the cash part in 'Pay in cash' "
                f"(e.g. {given:,}).",
            )
        raise SaleRefused(
            "cash_given",
            f"KES {given:,} given is less than the KES {part:,} part in cash: the cash given "
            "must cover the part it pays.",
        )


async def record_paid_attempt(store: Store, tx: WriteTx, attempt: Attempt, actor: Actor) -> None:
    """In the transaction that completes `attempt`: its tender toward its sale (the sale is
    made, paid by it alone, when this till had not opened one: `smartduka pay`, older flows).

    A second payment of a sale (flagged duplicate), or one for a sale already covered, is
    money to refund, not a tender: the attempt's own flags put it on the problem list. One
    the engine did not see as a duplicate (the sale was paid by cash or a direct payment, or
    is voided or refunded, or owes less than it pays) gets its flag and a problem here, in
    the same transaction, so no late money is ever taken quietly.
    """
    if attempt.state is not AttemptState.COMPLETED:
        return
    if attempt.flags & AttemptFlag.DUPLICATE_PAYMENT:
        return
    if await store.sales.by_attempt(attempt.shop_id, attempt.id, tx=tx) is not None:
        return
    sale = await store.sales.get(attempt.shop_id, attempt.sale_ref, tx=tx)
    if sale is None:
        sale = await store.sales.open(
            tx, attempt.shop_id, attempt.till_id, attempt.sale_ref, attempt.amount, [], actor=actor
        )
    tender = NewTender(
        TenderKind.MPESA_STK,
        attempt.amount,
        receipt_number=attempt.receipt_number,
        attempt_id=attempt.id,
    )
    refusal = await _pay_toward(store, tx, sale, attempt.till_id, tender, actor)
    if refusal is None:
        return
    paid_already = sale.state is SaleState.PAID
    flag = AttemptFlag.DUPLICATE_PAYMENT if paid_already else AttemptFlag.SUSPICIOUS
    await store.attempts.add_flags(tx, attempt.shop_id, attempt.id, flag, actor, reason=refusal)
    await _money_not_taken(store, tx, sale, attempt.till_id, tender, refusal)


async def record_direct_payment(
    store: Store, tx: WriteTx, record: C2BRecord, till_id: str, actor: Actor = Actor.CASHIER
) -> None:
    """In the transaction that attaches a direct payment to its sale at this till (the
    attach checks first, with `owed_for_direct`, that the sale takes it)."""
    if record.sale_ref is None:
        return
    sale = await store.sales.get(record.shop_id, record.sale_ref, tx=tx)
    if sale is None:
        sale = await store.sales.open(
            tx, record.shop_id, till_id, record.sale_ref, record.amount, [], actor=actor
        )
    tender = NewTender(TenderKind.MPESA_C2B, record.amount, receipt_number=record.trans_id)
    refusal = await _pay_toward(store, tx, sale, till_id, tender, actor)
    if refusal is not None:
        await _money_not_taken(store, tx, sale, till_id, tender, refusal)


async def _pay_toward(
    store: Store, tx: WriteTx, sale: Sale, till_id: str, tender: NewTender, actor: Actor
) -> str | None:
    """The M-Pesa `tender` toward `sale`, or why it cannot be one (nothing written then).

    What late money does to a sale left part paid (ABANDONED, on the problem list as "Part
    paid"), as a shop expects it (issue #15):

    - it pays exactly what is still owed: the sale is PAID, and its "Part paid" problem is
      resolved in this same transaction, its note saying by what ("Paid in full by late
      M-Pesa receipt X"), so no PAID sale keeps an open "Part paid" problem;
    - it pays less: the tender counts, the sale stays ABANDONED, and the problem's detail
      is made true again (what is now paid, by what, and what is still owed), audited;
    - it pays more than is owed, or the sale is paid, voided or refunded already: no
      tender (the tenders must add up to the total exactly); the caller puts the money on
      the problem list to give back.
    """
    if sale.state not in (SaleState.OPEN, SaleState.ABANDONED):
        return f"sale {sale.sale_ref} is {sale.state.value.lower()} already"
    if tender.amount > sale.owed:
        return (
            f"KES {tender.amount:,} is more than the KES {sale.owed:,} sale {sale.sale_ref} "
            "still owes"
        )
    await store.sales.add_tender(tx, sale.shop_id, sale.sale_ref, till_id, tender, actor=actor)
    if tender.amount == sale.owed:
        await store.sales.move(
            tx,
            sale.shop_id,
            sale.sale_ref,
            {sale.state},
            SaleState.PAID,
            actor=actor,
            detail={"how": "late payment"} if sale.state is SaleState.ABANDONED else None,
        )
    if sale.state is SaleState.ABANDONED:
        await _part_paid_now(store, tx, sale.shop_id, sale.sale_ref, tender, actor)
    return None


def _late_words(tender: NewTender) -> str:
    """The late tender as a resolution note names it: "late M-Pesa receipt QK12AB34CD"."""
    if tender.kind is TenderKind.MPESA_C2B:
        return f"late direct M-Pesa payment {tender.receipt_number}"
    if tender.receipt_number:
        return f"late M-Pesa receipt {tender.receipt_number}"
    return f"a late M-Pesa payment (attempt {tender.attempt_id}, receipt to follow)"


async def _part_paid_now(
    store: Store, tx: WriteTx, shop_id: str, sale_ref: str, tender: NewTender, actor: Actor
) -> None:
    """The sale's open "Part paid" problems after a late tender: resolved when it is paid,
    else their detail brought up to date."""
    sale = await store.sales.get(shop_id, sale_ref, tx=tx)
    assert sale is not None
    late = _late_words(tender)
    for problem in await store.problems.open_for_sale(
        tx, shop_id, ProblemKind.ABANDONED_SALE, sale_ref
    ):
        if sale.state is SaleState.PAID:
            await store.problems.resolve(
                tx, shop_id, problem.id, f"Paid in full by {late}", actor=actor
            )
        else:
            await store.problems.update_detail(
                tx,
                shop_id,
                problem.id,
                {**problem.detail, **_part_paid_detail(sale)},
                why=f"KES {tender.amount:,} more paid by {late}; KES {sale.owed:,} still owed",
                actor=actor,
            )


def _part_paid_detail(sale: Sale) -> dict[str, Any]:
    """What a "Part paid" problem says of its sale's money (its words are made from it)."""
    return {
        "sale_ref": sale.sale_ref,
        "total": sale.total,
        "paid": sale.paid,
        "owed": sale.owed,
        "amount": sale.paid,
        "tenders": _tenders_detail(sale),
    }


async def _money_not_taken(
    store: Store, tx: WriteTx, sale: Sale, till_id: str, tender: NewTender, why: str
) -> None:
    """M-Pesa money that reached a sale which cannot take it: a problem for the manager
    (give it back by reversal), in the transaction that recorded the payment."""
    if sale.state is SaleState.PAID and tender.attempt_id is not None:
        detail: dict[str, Any] = {
            "pattern": "duplicate_payment",
            "sale_ref": sale.sale_ref,
            "attempt_id": tender.attempt_id,
            "paid_by": [t.attempt_id for t in sale.tenders if t.attempt_id is not None],
            "amount": tender.amount,
        }
    else:
        detail = {
            "pattern": "money_not_taken",
            "sale_ref": sale.sale_ref,
            "sale_state": sale.state.value,
            "kind": tender.kind.value,
            "amount": tender.amount,
            "receipt": tender.receipt_number,
            "attempt_id": tender.attempt_id,
            "owed": sale.owed,
            "why": why,
        }
    log.warning("sale %s takes no further tender of %s: %s", sale.sale_ref, tender.amount, why)
    await store.problems.record(
        tx, sale.shop_id, ProblemKind.SUSPICIOUS_PATTERN, detail, till_id=till_id
    )


async def owed_for_direct(store: Store, shop_id: str, sale_ref: str, amount: int) -> str | None:
    """Why a direct payment of `amount` cannot pay `sale_ref` now, or None: an open sale
    with payments takes exactly what it still owes, and so does one left part paid (the
    customer came back with the rest: the sale is then paid and its problem resolved); a
    closed one takes nothing."""
    sale = await store.sales.get(shop_id, sale_ref)
    if sale is None:
        return None
    part_paid = sale.state is SaleState.ABANDONED and bool(sale.tenders)
    if sale.state is not SaleState.OPEN and not part_paid:
        return f"sale {sale_ref} is {sale.state.value.lower()} already"
    if sale.tenders and amount != sale.owed:
        return (
            f"KES {amount:,} is not the KES {sale.owed:,} still owed on sale {sale_ref}: a "
            "direct payment must pay exactly the rest"
        )
    if not sale.tenders and amount != sale.total:
        return f"KES {amount:,} is not sale {sale_ref}'s total of KES {sale.total:,}"
    return None


MAX_SALES_PER_DAY = 9999


def numbered_ref(day: datetime, number: int) -> str:
    """The reference for sale `number` of `day`: `MMDD` of its Kenya date and the counter,
    e.g. `0115007`. Short on purpose: the AccountReference the customer sees is the shop's
    prefix (at most 4 characters) plus this, 12 characters at most."""
    width = 3 if number < 1000 else 4
    return f"{day.astimezone(KENYA_TZ):%m%d}{number:0{width}d}"


class SaleNumbers:
    """The till's sale numbering, one per engine, so the app, `smartduka pay` and every other
    face get their numbers from one place. A number is free when no sale record, attempt or
    attached direct payment of this till uses it and no other holder (a checkout window, the
    CLI) was handed it and still holds it unused. Asking again as the same holder gives the
    same number back until it is used (F4 on an untouched sale keeps its number), so numbers
    form a gapless run; the run is read from the database, so a restarted till goes on from
    where it was. One process holds a till's data folder (`store/lock.py`), so the holders
    kept here are all there are."""

    def __init__(self, desk: SaleDesk, clock: Clock) -> None:
        self._desk = desk
        self._clock = clock
        self._day = ""
        self._next = 1
        self._held: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def next_free(self, holder: str) -> str:
        """The next free reference of today for `holder`. RuntimeError past 9,999 a day."""
        async with self._lock:
            now = self._clock.now()
            day = f"{now.astimezone(KENYA_TZ):%m%d}"
            if day != self._day:
                self._day, self._next, self._held = day, 1, {}
            held = self._held.get(holder)
            if held is not None and not await self._desk.ref_in_use(held):
                return held
            reference = await self._first_free(now, holder)
            self._held[holder] = reference
            return reference

    async def _first_free(self, now: datetime, holder: str) -> str:
        """Numbers are taken in order, so the used ones form a run from 1: gallop and then
        bisect to its end (a few look-ups even late in a busy day), then step past any
        stragglers (a number typed by hand, one another holder keeps)."""
        if await self._used(now, self._next):
            low, step = self._next, 1
            while low + step <= MAX_SALES_PER_DAY and await self._used(now, low + step):
                low, step = low + step, step * 2
            high = min(low + step, MAX_SALES_PER_DAY + 1)
            while high - low > 1:
                middle = (low + high) // 2
                if await self._used(now, middle):
                    low = middle
                else:
                    high = middle
            self._next = high
        others = {ref for who, ref in self._held.items() if who != holder}
        number = self._next
        while number <= MAX_SALES_PER_DAY:
            reference = numbered_ref(now, number)
            if reference not in others and not await self._desk.ref_in_use(reference):
                return reference
            number += 1
        raise RuntimeError("more than 9,999 sales today: type a sale reference by hand")

    async def _used(self, day: datetime, number: int) -> bool:
        return await self._desk.ref_in_use(numbered_ref(day, number))


class SaleDesk:
    """One till's sales: number them, open one, take cash toward it, clear it, list the
    day's, void or refund a paid cash sale."""

    def __init__(self, store: Store, shop_id: str, till_id: str, clock: Clock) -> None:
        self._store = store
        self.shop_id = shop_id
        self.till_id = till_id
        self._clock = clock
        self.numbers = SaleNumbers(self, clock)

    async def get(self, sale_ref: str) -> SaleView | None:
        sale = await self._store.sales.get(self.shop_id, sale_ref)
        return None if sale is None else sale_view(sale)

    async def ref_in_use(self, sale_ref: str) -> bool:
        """Whether this till used `sale_ref` already: a sale record, an attempt, or a direct
        payment attached to it (the next sale must not be offered that number)."""
        if await self._store.sales.get(self.shop_id, sale_ref) is not None:
            return True
        attempts = await self._store.attempts.for_sale(self.shop_id, sale_ref)
        if any(a.till_id == self.till_id for a in attempts):
            return True
        return await self._store.c2b.holds_sale(self.shop_id, self.till_id, sale_ref)

    async def open(
        self, sale_ref: str, total: int, lines: Sequence[tuple[str, int, int]] = ()
    ) -> SaleView:
        """The sale about to be paid: opened (audited) if new; an open sale nothing has paid
        toward takes the new total. SaleRefused for a sale with payments and another total,
        or one that is closed."""
        kept = [SaleLine(name, quantity, price) for name, quantity, price in lines]
        async with self._store.write() as tx:
            sale = await self._store.sales.get(self.shop_id, sale_ref, tx=tx)
            if sale is None:
                sale = await self._store.sales.open(
                    tx, self.shop_id, self.till_id, sale_ref, total, kept
                )
            elif sale.state is not SaleState.OPEN:
                raise SaleRefused(
                    "sale_ref",
                    f"Sale {sale_ref} is {sale.state.value.lower()} already: F4 starts a new one.",
                )
            elif sale.total != total or tuple(kept) != sale.lines:
                if sale.tenders:
                    raise SaleRefused(
                        "total",
                        f"Sale {sale_ref} has KES {sale.paid:,} paid toward its total of "
                        f"KES {sale.total:,}: the total cannot change now.",
                    )
                sale = await self._store.sales.replace_total(
                    tx, self.shop_id, sale_ref, total, kept
                )
        return sale_view(sale)

    async def cash_refusal(self) -> str | None:
        """Why this till cannot take cash now (no open shift), or None: the checkout asks
        before it offers the cash screen (take_cash asks again in its transaction)."""
        return await cash_refusal(self._store, self.shop_id, self.till_id)

    async def take_cash(
        self,
        sale_ref: str,
        total: int,
        given: int,
        *,
        part: int | None = None,
        lines: Sequence[tuple[str, int, int]] = (),
    ) -> CashTaken:
        """Take cash toward the sale: `part` of what it owes (all of it by default), from
        `given` handed over. One transaction: the sale (opened if new), the tender, PAID when
        the tenders now cover the total, each audited. SaleRefused, changing nothing, when the
        numbers do not fit (a part of 0, a part beyond what is owed, too little given)."""
        kept = [SaleLine(name, quantity, price) for name, quantity, price in lines]
        async with self._store.write() as tx:
            # The cash gate (the shifts work): cash goes into a drawer only in an open shift.
            refusal = await cash_refusal(self._store, self.shop_id, self.till_id, tx=tx)
            if refusal is not None:
                raise SaleRefused("shift", refusal)
            sale = await self._store.sales.get(self.shop_id, sale_ref, tx=tx)
            if sale is not None and sale.state is not SaleState.OPEN:
                raise SaleRefused(
                    "sale_ref",
                    f"Sale {sale_ref} is {sale.state.value.lower()} already: F4 starts a new one.",
                )
            if sale is not None and sale.total != total and sale.tenders:
                raise SaleRefused(
                    "total",
                    f"Sale {sale_ref}'s total is KES {sale.total:,}, not KES {total:,}.",
                )
            owed = total if sale is None else (total - sale.paid)
            the_part = owed if part is None else part
            check_cash(owed, the_part, given)
            if sale is None:
                sale = await self._store.sales.open(
                    tx, self.shop_id, self.till_id, sale_ref, total, kept
                )
            elif sale.total != total:
                sale = await self._store.sales.replace_total(
                    tx, self.shop_id, sale_ref, total, kept
                )
            await self._store.sales.add_tender(
                tx,
                self.shop_id,
                sale_ref,
                self.till_id,
                NewTender(TenderKind.CASH, the_part, cash_given=given),
            )
            if the_part == owed:
                await self._store.sales.move(
                    tx,
                    self.shop_id,
                    sale_ref,
                    {SaleState.OPEN},
                    SaleState.PAID,
                    actor=Actor.CASHIER,
                )
            after = await self._store.sales.get(self.shop_id, sale_ref, tx=tx)
        assert after is not None
        return CashTaken(sale_view(after), the_part, given, given - the_part)

    async def abandon(self, sale_ref: str, *, actor: Actor = Actor.CASHIER) -> SaleView | None:
        """The cashier cleared an open sale: ABANDONED (audited); with money taken toward it,
        a problem for the manager in the same transaction. None when there is no open sale."""
        async with self._store.write() as tx:
            sale = await self._store.sales.get(self.shop_id, sale_ref, tx=tx)
            if sale is None or sale.state is not SaleState.OPEN:
                return None
            moved = await self._abandon(tx, sale, actor, "cleared at the checkout")
        return sale_view(moved)

    async def _abandon(self, tx: WriteTx, sale: Sale, actor: Actor, how: str) -> Sale:
        moved = await self._store.sales.move(
            tx,
            self.shop_id,
            sale.sale_ref,
            {SaleState.OPEN},
            SaleState.ABANDONED,
            actor=actor,
            detail={"how": how},
        )
        if sale.tenders:
            await self._store.problems.record(
                tx,
                self.shop_id,
                ProblemKind.ABANDONED_SALE,
                {**_part_paid_detail(sale), "how": how},
                till_id=self.till_id,
                actor=actor,
            )
        return moved

    async def abandon_left_open(self) -> list[SaleView]:
        """At start-up: this till's sales still open are left from before (the till stopped
        mid-sale). Each becomes ABANDONED; those with money taken go to the manager."""
        left = await self._store.sales.for_till(
            self.shop_id, self.till_id, states={SaleState.OPEN}, limit=1000
        )
        moved = []
        for sale in left:
            async with self._store.write() as tx:
                current = await self._store.sales.get(self.shop_id, sale.sale_ref, tx=tx)
                if current is None or current.state is not SaleState.OPEN:
                    continue
                moved.append(
                    await self._abandon(tx, current, Actor.SYSTEM, "found open at start-up")
                )
        return [sale_view(sale) for sale in moved]

    async def today(self, since: datetime, limit: int = 200) -> list[SaleView]:
        """This till's sales opened since `since`, newest first."""
        sales = await self._store.sales.for_till(
            self.shop_id, self.till_id, since=since, limit=limit
        )
        return [sale_view(sale) for sale in sales]

    # ------------------------------------------------------------------ void and refund

    async def void(self, sale_ref: str, pin: Secret, note: str) -> SaleView:
        """Cancel a paid cash sale, or one left part paid in cash (its cash goes back):
        VOIDED with the note, audited, its "Part paid" problem resolved in the same step.
        Refused for a sale voided or refunded already, one paid by M-Pesa in any part (that
        money goes back by reversal), a wrong PIN, or no note."""
        return await self._undo(sale_ref, pin, note, SaleState.VOIDED)

    async def refund(self, sale_ref: str, pin: Secret, note: str) -> SaleView:
        """Give back a paid (or part-paid, abandoned) sale's cash: REFUNDED with the note,
        audited, its "Part paid" problem resolved in the same step. Refused for a sale
        with no cash tender (M-Pesa goes back by reversal), one refunded or voided already, a
        wrong PIN, or no note. A split sale's M-Pesa part still needs its reversal: the refund
        names its receipts (`SaleView.awaiting_reversal`) and the sale says so until then."""
        return await self._undo(sale_ref, pin, note, SaleState.REFUNDED)

    async def _undo(self, sale_ref: str, pin: Secret, note: str, to: SaleState) -> SaleView:
        doing = "void" if to is SaleState.VOIDED else "refund"
        sale = await self._store.sales.get(self.shop_id, sale_ref)
        if sale is None:
            raise SaleRefused("sale_ref", f"There is no sale {sale_ref} at this till.")
        self._check_undo(sale, to)
        note = note.strip() if isinstance(note, str) else ""
        if not note or len(note) > MAX_NOTE:
            raise SaleRefused("note", f"Say why in the note (1 to {MAX_NOTE} characters).")
        if not pin.reveal().strip():
            raise SaleRefused("pin", "Type the manager PIN.")
        try:
            check = await ManagerPin.of(self._store).verify(pin, purpose=f"{doing} sale {sale_ref}")
        except VaultError as error:
            raise SaleRefused("pin", str(error)) from None
        if not check.accepted:
            raise SaleRefused("pin", check.explain())
        async with self._store.write() as tx:
            current = await self._store.sales.get(self.shop_id, sale_ref, tx=tx)
            assert current is not None
            self._check_undo(current, to)
            try:
                moved = await self._store.sales.move(
                    tx,
                    self.shop_id,
                    sale_ref,
                    {SaleState.PAID, SaleState.ABANDONED},
                    to,
                    actor=Actor.MANAGER,
                    note=note,
                    detail={
                        "cash_back": current.cash,
                        "mpesa_kept": current.mpesa,
                        # The M-Pesa receipts still to reverse (V): a refund returns only cash.
                        "mpesa_to_reverse": [
                            t.receipt_number for t in current.tenders if t.kind.is_mpesa
                        ],
                    },
                )
            except SaleStateError as error:
                raise SaleRefused("sale_ref", error.message) from None
            await self._settle_part_paid(tx, moved, doing, note)
        return sale_view(moved)

    async def _settle_part_paid(self, tx: WriteTx, sale: Sale, doing: str, note: str) -> None:
        """A void or refund settles the sale's open "Part paid" problem (the customer had the
        money back), in its transaction; an M-Pesa part still to reverse is named in the note."""
        words = "Voided" if doing == "void" else "Cash refunded"
        words += f" by the manager: {note}"
        receipts = [
            t.receipt_number or "receipt to follow" for t in sale.tenders if t.kind.is_mpesa
        ]
        if receipts:
            words = f"{words[: MAX_NOTE - 80]}; M-Pesa {', '.join(receipts)} awaiting reversal"
        for problem in await self._store.problems.open_for_sale(
            tx, self.shop_id, ProblemKind.ABANDONED_SALE, sale.sale_ref
        ):
            await self._store.problems.resolve(tx, self.shop_id, problem.id, words[:MAX_NOTE])

    def _check_undo(self, sale: Sale, to: SaleState) -> None:
        ref = sale.sale_ref
        if sale.state in (SaleState.VOIDED, SaleState.REFUNDED):
            raise SaleRefused("sale_ref", f"Sale {ref} is {sale.state.value.lower()} already.")
        # A sale left part paid may be undone too: that is how its money goes back.
        if sale.state not in (SaleState.PAID, SaleState.ABANDONED) or not sale.tenders:
            raise SaleRefused(
                "sale_ref", f"Sale {ref} is {sale.state.value.lower()}, not paid: nothing to undo."
            )
        mpesa = sale.mpesa
        if to is SaleState.VOIDED and mpesa:
            raise SaleRefused(
                "sale_ref",
                f"Sale {ref} was paid KES {mpesa:,} by M-Pesa: that money goes back by reversal "
                "(V on the payment in the manager's screens), never by a void.",
            )
        if to is SaleState.REFUNDED and not sale.cash:
            raise SaleRefused(
                "sale_ref",
                f"Sale {ref} has no cash tender: an M-Pesa payment is refunded by reversal "
                "(V on the payment in the manager's screens).",
            )
