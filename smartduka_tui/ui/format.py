"""How the cashier app writes money, times and countdowns. Pure functions, tested directly."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from smartduka_tui.mpesa.kenya_time import KENYA_TZ, kenya_clock

if TYPE_CHECKING:
    from smartduka_tui.payments.sales import TenderView


def shillings(amount: int) -> str:
    """Whole Kenya shillings as the shop counter writes them: `KES 1,250`."""
    return f"KES {amount:,}"


def tender_words(tender: TenderView) -> str:
    """One line for the cashier: "KES 200 cash (given 1,000, change 800)"."""
    text = f"KES {tender.amount:,} {tender.kind.label.lower().replace('m-pesa', 'M-Pesa')}"
    if tender.cash_given is not None and tender.change_given:
        text += f" (given {tender.cash_given:,}, change {tender.change_given:,})"
    if tender.receipt:
        text += f" {tender.receipt}"
    return text


def local_time(moment: datetime) -> str:
    """A moment as the shop's wall clock shows it (Kenya time), to the second."""
    return kenya_clock(moment)


def local_date_time(moment: datetime) -> str:
    return moment.astimezone(KENYA_TZ).strftime("%d %b %Y %H:%M:%S")


def seconds_left(deadline: datetime, now: datetime) -> int:
    """Whole seconds until `deadline`, rounded up (a countdown shows 0 only when time is up)."""
    return max(0, math.ceil((deadline - now).total_seconds()))


def countdown(seconds: int) -> str:
    """`m:ss`, or `h:mm:ss` past an hour."""
    seconds = max(0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def masked_apart(phones: list[str]) -> list[str]:
    """Normalised phones (2547XXXXXXXX) as the counter may see them: `07** *** 678`, with as
    many final digits as it takes for no two to look alike (at least 3, the whole number at
    most), so a marked recent number is never confused with another."""
    locals_ = ["0" + phone[3:] for phone in phones]
    for shown_digits in range(3, 9):
        masked = [_mask_local(number, shown_digits) for number in locals_]
        if len(set(masked)) == len(set(locals_)):
            return masked
    return [_mask_local(number, 8) for number in locals_]


def _mask_local(number: str, shown_digits: int) -> str:
    hidden = len(number) - 2 - shown_digits
    masked = number[:2] + "*" * hidden + number[len(number) - shown_digits :]
    return f"{masked[:4]} {masked[4:7]} {masked[7:]}"
