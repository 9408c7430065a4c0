"""Reversal of a payment the till took: what the manager is told, in plain words.

The rules (StatementService.reverse): manager only (the faces ask for the PIN first) with a
note of 2 to 100 characters that goes to M-Pesa as the Remarks and into the audit entry; only a
receipt a paid attempt of this shop holds, or a direct payment (C2B) this till received; never
one already reversed or with a reversal still waiting. The payment is marked REVERSED only when
M-Pesa's result says code 0, in the same transaction that lands the result with its audit
entry; acceptance of the request is not a reversal. A result that arrives after the wait still
applies.

The manager reaches it from three places, all through the same service: V on a paid payment's
detail, V on a direct payment no sale holds, and V on a "paid twice" problem, which reverses
the sale's second payment (the later one; the first keeps paying the sale).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from smartduka_tui.mpesa.statement import ALREADY_REVERSED, INVALID_ORIGINAL, AsyncResult

NOTE_MIN: Final = 2
NOTE_MAX: Final = 100


class ReversalRefusal(StrEnum):
    """Why nothing was reversed (the CLI's JSON uses these)."""

    MALFORMED = "malformed"
    BAD_NOTE = "bad_note"
    NOT_OURS = "not_ours"
    ALREADY_REVERSED = "already_reversed"
    WAITING = "waiting"
    NOT_SET_UP = "not_set_up"
    MPESA_REFUSED = "mpesa_refused"
    FAILED = "failed"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class ReversalVerdict:
    """`reversed`: M-Pesa's result said code 0 and the payment is marked REVERSED."""

    reversed: bool
    message: str
    receipt: str | None = None
    refusal: ReversalRefusal | None = None
    sale_ref: str | None = None
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class ReversalTarget:
    """The payment a V would reverse, as the manager's dialog names it before asking."""

    receipt: str
    amount: int
    what: str
    """What it paid, in words: "sale 0042", "direct payment, no sale", "the second payment
    of sale 0042"."""


class Reversals(Protocol):
    """What the manager's faces call (`StatementService` is it)."""

    async def reverse(self, code: str, note: str) -> ReversalVerdict: ...


def refused(refusal: ReversalRefusal, message: str, receipt: str | None = None) -> ReversalVerdict:
    return ReversalVerdict(False, message, receipt=receipt, refusal=refusal)


# Reversal result codes other than 0, R000001 and R000002 (REFERENCE.md section 7), in words.
RESULT_WORDS: Final[dict[int | str, str]] = {
    1: "the shop's M-Pesa balance is too low to give the money back",
    11: "the shop's M-Pesa account cannot make this reversal now (code 11)",
    21: "the initiator may not reverse payments: its API operator needs the "
    "Org Reversals Initiator role on the M-Pesa portal",
    2001: "M-Pesa refused the shop's initiator name or password: a manager must set them again",
    2006: "the shop's M-Pesa account is not active (code 2006)",
    2028: "this shortcode may not make reversals (code 2028)",
    8006: "the initiator's security credential is locked (code 8006): ask Safaricom",
}


def result_words(result: AsyncResult, receipt: str, amount: int) -> ReversalVerdict:
    """The verdict for a result that is not code 0 (nothing was reversed)."""
    code = result.result_code
    if code == ALREADY_REVERSED:
        return refused(
            ReversalRefusal.ALREADY_REVERSED,
            f"M-Pesa says receipt {receipt} was already reversed (R000001). Nothing changed "
            "here: check the shop's M-Pesa statement.",
            receipt,
        )
    if code == INVALID_ORIGINAL:
        return refused(
            ReversalRefusal.FAILED,
            f"M-Pesa knows no payment {receipt} of KES {amount:,} to this shop (R000002). "
            "Nothing was reversed.",
            receipt,
        )
    words = RESULT_WORDS.get(code) or f"code {code}: {result.result_desc or 'no reason given'}"
    return refused(
        ReversalRefusal.FAILED, f"M-Pesa did not reverse it: {words}. Nothing changed.", receipt
    )
