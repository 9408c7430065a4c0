"""How the cashier app writes money, times and countdowns. Pure functions, tested directly."""

from __future__ import annotations

import math
from datetime import datetime

from smartduka_tui.mpesa.kenya_time import KENYA_TZ


def shillings(amount: int) -> str:
    """Whole Kenya shillings as the shop counter writes them: `KES 1,250`."""
    return f"KES {amount:,}"


def local_time(moment: datetime) -> str:
    """A moment as the shop's wall clock shows it (Kenya time), to the second."""
    return moment.astimezone(KENYA_TZ).strftime("%H:%M:%S")


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
