"""The daily summary: sales paid and not paid, with the attempts beside them (count, failure
rate by code, time to pay). Manager figures are per sale: retries and Daraja's code-17
refusals are attempts, not lost sales."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from smartduka_tui.model import FINAL, LIVE, AttemptState
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.codes import advise
from smartduka_tui.store.store import Store


@dataclass(frozen=True, slots=True)
class CodeShare:
    code: str
    count: int
    share: float
    """Of the attempts that reached a final state."""
    meaning: str


@dataclass(frozen=True, slots=True)
class DailySummary:
    day: date
    attempts: int
    paid: int
    amount_paid: int
    failed: int
    expired: int
    needs_review: int
    live: int
    finished: int
    failure_rate: float
    failures_by_code: tuple[CodeShare, ...]
    average_seconds_to_pay: float | None
    sales: int = 0
    sales_paid: int = 0
    sales_not_paid: int = 0
    sale_failure_rate: float = 0.0
    """Sales not paid over settled sales: the figure to judge the day by (attempts beside)."""
    reversed: int = 0
    """Paid attempts whose money M-Pesa gave back (counted in `paid` too)."""
    amount_reversed: int = 0


async def summarise_day(store: Store, shop_id: str, day: date) -> DailySummary:
    """One day's totals (Kenya calendar day) for one shop."""
    summary = await store.attempts.daily_summary(shop_id, day, KENYA_TZ)
    finished = sum(n for state, n in summary.by_state.items() if state in FINAL)
    shares = tuple(
        CodeShare(
            code=code,
            count=count,
            share=count / finished if finished else 0.0,
            meaning=advise(None if code == "none" else code).description or "",
        )
        for code, count in sorted(summary.failures_by_code.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return DailySummary(
        day=day,
        attempts=summary.attempts,
        paid=summary.paid,
        amount_paid=summary.amount_paid,
        failed=summary.failed,
        expired=summary.by_state.get(AttemptState.EXPIRED, 0),
        needs_review=summary.by_state.get(AttemptState.NEEDS_REVIEW, 0),
        live=sum(n for state, n in summary.by_state.items() if state in LIVE),
        finished=finished,
        failure_rate=summary.failure_rate,
        failures_by_code=shares,
        average_seconds_to_pay=summary.average_seconds_to_pay,
        sales=summary.sales,
        sales_paid=summary.sales_paid,
        sales_not_paid=summary.sales_not_paid,
        reversed=summary.reversed,
        amount_reversed=summary.amount_reversed,
        sale_failure_rate=summary.sale_failure_rate,
    )
