"""Auto-numbered sale references for the checkout: `MMDD` in Kenya time and a counter, e.g.
`0115007`.

Short on purpose: the AccountReference Daraja shows the customer is the shop's prefix (at most 4
characters) plus the sale reference, 12 characters at most, so 7 or 8 characters leave room.
The numbering asks the payment service which references are taken, so a restarted till does not
reuse one; the cashier may still type any reference and the service judges it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from smartduka_tui.mpesa.kenya_time import KENYA_TZ

if TYPE_CHECKING:
    from smartduka_tui.clock import Clock
    from smartduka_tui.payments.api import PaymentService

MAX_PER_DAY = 9999


def sale_ref(day: datetime, number: int) -> str:
    """The reference for sale `number` of `day` (Kenya date)."""
    width = 3 if number < 1000 else 4
    return f"{day.astimezone(KENYA_TZ):%m%d}{number:0{width}d}"


class SaleNumbers:
    """Hands out the next free reference of the day."""

    def __init__(self, payments: PaymentService, clock: Clock) -> None:
        self._payments = payments
        self._clock = clock
        self._day = ""
        self._next = 1

    async def next_free(self) -> str:
        """The next reference of today that no attempt or attached direct payment uses yet.

        Numbers are taken in order, so the used ones form a run from 1: gallop and then bisect
        to its end (a few look-ups even late in a busy day), then step past any stragglers.
        """
        now = self._clock.now()
        day = f"{now.astimezone(KENYA_TZ):%m%d}"
        if day != self._day:
            self._day, self._next = day, 1
        if await self._taken(now, self._next):
            low, step = self._next, 1
            while low + step <= MAX_PER_DAY and await self._taken(now, low + step):
                low, step = low + step, step * 2
            high = min(low + step, MAX_PER_DAY + 1)
            while high - low > 1:
                middle = (low + high) // 2
                if await self._taken(now, middle):
                    low = middle
                else:
                    high = middle
            self._next = high
        while self._next <= MAX_PER_DAY:
            if not await self._taken(now, self._next):
                return sale_ref(now, self._next)
            self._next += 1
        raise RuntimeError("more than 9,999 sales today: type a sale reference by hand")

    async def _taken(self, day: datetime, number: int) -> bool:
        return await self._payments.sale_ref_in_use(sale_ref(day, number))
