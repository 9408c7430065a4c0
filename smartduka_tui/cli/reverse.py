"""`smartduka reverse RECEIPT --note WHY`: give a customer back a payment the till took (a
duplicate or a wrong payment), with M-Pesa's Reversal API. Manager only: a manager PIN must be
set, and is asked for first.

The payment is marked REVERSED only when M-Pesa's result says code 0; acceptance of the request
is not a reversal. Every refusal says why and changes nothing; R000001, R000002 and the other
result codes are said in words.

Exit codes: 0 reversed, 1 not reversed (the message says why), 2 bad input (a malformed code or
note), 3 not set up (no relay, initiator, certificate or manager PIN).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_SET_UP, EXIT_OK
from smartduka_tui.cli.pay import fail, run_in_till

if TYPE_CHECKING:
    from smartduka_tui.payments.reversal import ReversalVerdict
    from smartduka_tui.till import Till


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reverse",
        help="reverse a payment the till took (manager PIN and a note)",
        description="Give the customer back the payment with this receipt, by M-Pesa's "
        "Reversal; it shows REVERSED only when M-Pesa's result says so.",
    )
    parser.add_argument("receipt", metavar="RECEIPT", help="the receipt code, e.g. TKQ9ZZ1A2B")
    parser.add_argument(
        "--note", required=True, help="why (2 to 100 characters; M-Pesa keeps it too)"
    )
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_in_till(args, partial(_reverse, args), receipt_checks=True)


def exit_code(verdict: ReversalVerdict) -> int:
    from smartduka_tui.payments.reversal import ReversalRefusal

    if verdict.reversed:
        return EXIT_OK
    if verdict.refusal in (ReversalRefusal.MALFORMED, ReversalRefusal.BAD_NOTE):
        return EXIT_BAD_INPUT
    if verdict.refusal is ReversalRefusal.NOT_SET_UP:
        return EXIT_NOT_SET_UP
    return EXIT_FAILED


def print_verdict(verdict: ReversalVerdict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(verdict), indent=2, sort_keys=True))
    else:
        print(verdict.message)


async def _reverse(args: argparse.Namespace, till: Till) -> int:
    from smartduka_tui.cli.common import CliError
    from smartduka_tui.cli.manager import manager_only

    try:
        await manager_only(
            till.engine.store,
            "reverse a payment",
            "reversals are for a manager: set a manager PIN first (`smartduka manager "
            "set-pin`). Nothing was sent.",
        )
    except CliError as error:
        return fail(error.message, EXIT_NOT_SET_UP)
    service = till.receipt_checks
    if service is None:
        return fail(
            "reversals need the relay (M-Pesa answers through it): enrol this "
            "till first. Nothing was sent.",
            EXIT_NOT_SET_UP,
        )
    verdict = await service.reverse(args.receipt, args.note)
    print_verdict(verdict, as_json=args.json)
    return exit_code(verdict)
