"""Which till and sale of the shop hold a receipt: the shop-wide half of "no other sale holds it".

Each till has its own store, but every till of a shop pulls the same shortcode's statement and
may be shown any receipt code. The relay keeps the shop's receipt index (callback_relay
`receipts.py`); this module is the domain's view of it, so the pull and the receipt checks
depend on a small protocol and the HTTP client lives with the other relay calls (the relay
client's `RelayShopReceipts`, which the composition root builds once and hands to the pull,
the receipt checks and the receipt publisher).

The index only ever stops an accusation or refuses a second holder: it never pays a sale. A
relay that cannot be reached is `ShopReceiptsUnavailable`, and the caller says what it could
not check. A receipt granted to a sale that then did not take it is released, so the index
never keeps an unpaid sale's hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ReceiptHolder:
    """The till and sale that hold a receipt in this shop."""

    receipt: str
    till_id: str
    sale_ref: str

    def words(self) -> str:
        return f"sale {self.sale_ref} at till {self.till_id}"


class ShopReceiptsUnavailable(Exception):
    """The shop's receipt index could not be asked (relay down, or an answer we cannot read)."""


class ShopReceipts(Protocol):
    """The relay's receipt index, as this till sees it."""

    async def register(self, held: Sequence[tuple[str, str]]) -> list[ReceiptHolder]:
        """Hold each (receipt, sale_ref) for this till, first holder wins; returns the ones
        another holder (another till, or another sale) already has, with that holder."""
        ...

    async def known(self, receipts: Sequence[str]) -> dict[str, ReceiptHolder]:
        """The holders of those of `receipts` that some sale of the shop holds."""
        ...

    async def release(self, receipt: str, sale_ref: str) -> bool:
        """Give back `receipt`, registered for this till's `sale_ref`, when that sale did not
        take it after all, so another sale of the shop may. Best effort, never raises: True
        when it is given back (or that sale no longer held it), False when the relay could not
        be told and it is kept to give back at a later call."""
        ...
