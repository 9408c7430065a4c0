"""A sale's receipt as data: lines, tenders and change, all in integer shillings.

The sale is covered when the tenders, less the change, add up to the total: a cash tender's
amount on the receipt is the cash handed over, and the change is what went back (M-Pesa
charges the exact amount, so its tenders give none).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from smartduka_tui.model import TenderKind

__all__ = ["Receipt", "ReceiptError", "ReceiptLine", "Tender", "TenderKind"]


class ReceiptError(Exception):
    """No receipt can be made (an unknown sale, one not paid); the message says which."""


@dataclass(frozen=True)
class Tender:
    """One payment towards the sale; `reference` is the M-Pesa receipt number, if known."""

    kind: TenderKind
    amount: int
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.amount < 1:
            raise ValueError("a tender is at least 1 shilling")


@dataclass(frozen=True)
class ReceiptLine:
    """One line of the sale; today a sale rung up as one total is one line of quantity 1."""

    description: str
    quantity: int
    unit_price: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Receipt:
    """Everything printed on one receipt. `paid_at` is timezone-aware (shown in Kenya time)."""

    shop_name: str
    sale_ref: str
    till_id: str
    cashier: str | None
    paid_at: datetime
    lines: tuple[ReceiptLine, ...]
    tenders: tuple[Tender, ...]
    change: int = 0
    copy: bool = False

    def __post_init__(self) -> None:
        if self.paid_at.tzinfo is None:
            raise ValueError("a receipt's time must be timezone-aware")
        if self.change < 0:
            raise ValueError("change cannot be negative")
        if self.tendered - self.change != self.total:
            raise ValueError(
                f"tenders of {self.tendered} less change of {self.change} do not cover "
                f"the total of {self.total}"
            )

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def tendered(self) -> int:
        return sum(tender.amount for tender in self.tenders)

    def as_copy(self) -> Receipt:
        """The same receipt marked COPY, for a reprint."""
        return replace(self, copy=True)
