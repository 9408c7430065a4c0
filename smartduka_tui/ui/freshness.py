"""Which of two views of one attempt is the newer, so a late-arriving old view never undoes a
newer one on screen.

The engine builds a view with a few reads after each change and hands it to listeners, and the
app also polls; so views of one attempt can reach a screen out of order. An attempt only moves
forward (CREATED, then PENDING or UNKNOWN, then a final state; COMPLETED is never left and a
FAILED or EXPIRED one can only become COMPLETED), and a receipt once known stays known. A view
that would move backwards by those rules is stale.
"""

from __future__ import annotations

from smartduka_tui.model import AttemptState
from smartduka_tui.payments.api import PaymentView

_RANK: dict[AttemptState, int] = {
    AttemptState.CREATED: 0,
    AttemptState.PENDING: 1,
    AttemptState.UNKNOWN: 1,
    AttemptState.FAILED: 2,
    AttemptState.EXPIRED: 2,
    AttemptState.NEEDS_REVIEW: 2,
    AttemptState.COMPLETED: 3,
}


def is_stale(new: PaymentView, current: PaymentView) -> bool:
    """True when `new` is an older picture of `current`'s attempt than `current` is."""
    if new.attempt_id != current.attempt_id:
        return False
    if _RANK[new.state] != _RANK[current.state]:
        return _RANK[new.state] < _RANK[current.state]
    return bool(current.receipt) and not new.receipt


def newest(current: PaymentView, *candidates: PaymentView | None) -> PaymentView:
    """`current`, or the newest candidate of the same attempt that is not stale against it."""
    best = current
    for candidate in candidates:
        if (
            candidate is not None
            and candidate.attempt_id == best.attempt_id
            and not is_stale(candidate, best)
        ):
            best = candidate
    return best
