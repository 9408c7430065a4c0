"""Receipts: what a sale's receipt says (model), and its text rendering.

A core package: it imports neither Textual nor Starlette, so the CLI, the app and the printer
all render the same receipt from the same data.
"""

from smartduka_tui.receipts.model import (
    Receipt,
    ReceiptError,
    ReceiptLine,
    Tender,
    TenderKind,
)
from smartduka_tui.receipts.text import RECEIPT_COLUMNS, render_text, shillings

__all__ = [
    "RECEIPT_COLUMNS",
    "Receipt",
    "ReceiptError",
    "ReceiptLine",
    "Tender",
    "TenderKind",
    "render_text",
    "shillings",
]
