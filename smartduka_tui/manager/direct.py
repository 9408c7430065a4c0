"""The manager's view of direct payments (C2B) no sale holds yet, and of the last pull of the
M-Pesa statement per shortcode, in words the screen shows as they are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.store.c2b import C2BRecord
from smartduka_tui.store.pull import PullStatus
from smartduka_tui.store.store import Store

# One screen's worth, and then some: beyond this the manager has a bigger problem to solve.
LIST_LIMIT = 200


@dataclass(frozen=True, slots=True)
class DirectPaymentRow:
    """One unattached direct payment as the manager sees it (phone as M-Pesa masked it)."""

    trans_id: str
    amount: int
    paid_at: datetime
    payer: str
    first_name: str
    age: str


@dataclass(frozen=True, slots=True)
class DirectPaymentsView:
    payments: tuple[DirectPaymentRow, ...]
    pull_lines: tuple[str, ...]
    """One line per shortcode: the last pull, when, what it found, or why it failed."""


def age_words(now: datetime, then: datetime) -> str:
    """How long ago, in the largest whole unit: "just now", "12 min", "3 h", "2 d"."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def _short(moment: datetime) -> str:
    return moment.astimezone(KENYA_TZ).strftime("%d %b %H:%M")


def pull_words(shortcode: str, status: PullStatus | None, now: datetime) -> str:
    """The last pull of `shortcode` in one line."""
    if status is None or status.last_pull_at is None:
        return f"Statement {shortcode}: never pulled (smartduka pull, or P here)"
    when = f"{_short(status.last_pull_at)} ({age_words(now, status.last_pull_at)} ago)"
    if status.error is not None:
        good = f"; last good {_short(status.last_ok_at)}" if status.last_ok_at else ""
        return f"Statement {shortcode}: pull FAILED {when}: {status.error}{good}"
    return (
        f"Statement {shortcode}: pulled {when}, {status.rows_seen:,} rows, "
        f"{status.new_rows:,} new, {status.receipts_filled:,} receipts filled, "
        f"{status.problems_found:,} problem{'' if status.problems_found == 1 else 's'}"
    )


def _row(record: C2BRecord, now: datetime) -> DirectPaymentRow:
    return DirectPaymentRow(
        trans_id=record.trans_id,
        amount=record.amount,
        paid_at=record.paid_at,
        payer=record.payer,
        first_name=record.first_name,
        age=age_words(now, record.paid_at),
    )


async def direct_payments_view(
    store: Store, shop_id: str, shortcodes: tuple[str, ...], now: datetime
) -> DirectPaymentsView:
    """Unattached direct payments, newest first, and the last pull of each shortcode."""
    records = await store.c2b.recent(shop_id, unattached_only=True, limit=LIST_LIMIT)
    statuses = {s.shortcode: s for s in await store.pull.statuses(shop_id)}
    codes = tuple(dict.fromkeys((*shortcodes, *statuses)))
    return DirectPaymentsView(
        payments=tuple(_row(record, now) for record in records),
        pull_lines=tuple(pull_words(code, statuses.get(code), now) for code in codes),
    )
