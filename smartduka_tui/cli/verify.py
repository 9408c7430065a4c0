"""`smartduka verify-receipt CODE [--sale N]`: check a receipt code the customer shows.

The till asks M-Pesa (Transaction Status; the result comes back through the relay) and, with
`--sale`, accepts the receipt for that sale only when amount, shortcode and time fit and no
other sale holds it: the sale is then paid. Every refusal says why in plain words and changes
nothing. Without `--sale` it only reports what M-Pesa says about the receipt.

Exit codes: 0 accepted, 1 not accepted (the message says why), 2 malformed code, 3 the till
is not set up for receipt checks (no relay, initiator or certificate).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_SET_UP, EXIT_OK
from smartduka_tui.cli.pay import fail, run_in_till

if TYPE_CHECKING:
    from smartduka_tui.payments.statement import ReceiptVerdict
    from smartduka_tui.till import Till


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify-receipt",
        help="check a receipt code the customer shows, and pay a sale with it",
        description="Check an M-Pesa receipt code with Transaction Status; with --sale, pay "
        "that sale with it when amount, till and time fit and no other sale holds it.",
    )
    parser.add_argument("code", metavar="CODE", help="the receipt code, e.g. TKQ9ZZ1A2B")
    parser.add_argument("--sale", metavar="N", help="the sale to pay with it")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_in_till(args, partial(_verify, args), receipt_checks=True)


def _exit_code(verdict: ReceiptVerdict) -> int:
    from smartduka_tui.payments.statement import ReceiptRefusal

    if verdict.accepted:
        return EXIT_OK
    if verdict.refusal is ReceiptRefusal.MALFORMED:
        return EXIT_BAD_INPUT
    if verdict.refusal is ReceiptRefusal.NOT_SET_UP:
        return EXIT_NOT_SET_UP
    return EXIT_FAILED


def print_verdict(verdict: ReceiptVerdict, *, as_json: bool) -> None:
    from smartduka_tui.words import verdict_words

    if not as_json:
        print(verdict_words(verdict))
        return
    out = {
        "accepted": verdict.accepted,
        "receipt": verdict.receipt,
        "refusal": None if verdict.refusal is None else verdict.refusal.value,
        "message": verdict_words(verdict),
        "amount_paid": None if verdict.amount_paid is None else str(verdict.amount_paid),
        "paid_at": None if verdict.paid_at is None else verdict.paid_at.isoformat(),
        "payment": None if verdict.payment is None else verdict.payment.model_dump(mode="json"),
    }
    print(json.dumps(out, indent=2, sort_keys=True))


async def _verify(args: argparse.Namespace, till: Till) -> int:
    service = till.receipt_checks
    if service is None:
        return fail(
            "receipt checks need the relay (M-Pesa answers through it): enrol this till first",
            EXIT_NOT_SET_UP,
        )
    verdict = await service.verify_receipt(args.code, args.sale)
    print_verdict(verdict, as_json=args.json)
    return _exit_code(verdict)
