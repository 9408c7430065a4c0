"""`smartduka transactions`: the payments and the problem-payments list, headless.

Without `--problems` it lists every payment attempt (newest first) and `--state` takes payment
states (completed, failed, expired, needs_review, unknown, pending, created). With `--problems`
it lists exactly what the manager's "Problem payments" screen lists: problem attempts merged
with callbacks that matched nothing, unreadable events and suspicious patterns; `--state` then
takes the problem kinds (failed, expired, unknown, needs_review, late, duplicate,
receipt_pending, suspicious, unmatched_callback, unapplied_event, suspicious_pattern).

`--since`/`--until` take a date (`2026-01-15`, Kenya time; `--until` includes that day) or a
time (`2026-01-15 14:30`). Output is a table, `--json` or `--csv` (the columns of the screen's
export). Phones are masked; `--full-phones` shows whole numbers and asks for the manager PIN.
A bad filter is named with what is wrong; nothing is read or changed then.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CliError,
    open_store,
    require_manager_pin,
    run,
    shop_for,
)

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.manager import PaymentRow

FLAG_FOR_FIELD = {
    "since": "--since",
    "until": "--until",
    "state": "--state",
    "result_code": "--code",
    "phone": "--phone",
    "till": "--till",
    "limit": "--limit",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "transactions",
        help="list payments, or the problem payments a manager should look at",
        description="List payments (newest first), filtered; --problems for the problem list.",
    )
    parser.add_argument(
        "--problems",
        action="store_true",
        help="the problem-payments list (as the manager screen shows it)",
    )
    parser.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="payment state, or with --problems a problem kind (repeat, or comma-separate)",
    )
    parser.add_argument("--since", default="", metavar="WHEN", help="from this date or time")
    parser.add_argument(
        "--until", default="", metavar="WHEN", help="up to this date (included) or time"
    )
    parser.add_argument("--phone", default="", help="only this customer's phone")
    parser.add_argument("--code", default="", help="only this M-Pesa result code, e.g. 1032")
    parser.add_argument("--till", default="", help="only this till")
    parser.add_argument("--shop", default=None, help="shop id (default: the configured shop)")
    parser.add_argument(
        "--include-resolved",
        action="store_true",
        help="with --problems: also problems a manager already resolved",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N rows")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON array")
    output.add_argument("--csv", action="store_true", help="print CSV")
    parser.add_argument(
        "--full-phones",
        action="store_true",
        help="show whole phone numbers instead of masked ones (asks for the manager PIN)",
    )
    parser.set_defaults(handler=cmd_transactions)


def _filters(args: argparse.Namespace) -> Any:
    """The filter the flags describe, or CliError naming the first bad flag."""
    from smartduka_tui.manager import (
        ManagerInputError,
        history_filter_from_text,
        problem_filter_from_text,
    )

    if args.limit is not None and args.limit < 1:
        raise CliError("--limit: must be 1 or more", EXIT_BAD_INPUT)
    if args.include_resolved and not args.problems:
        raise CliError("--include-resolved: applies only with --problems", EXIT_BAD_INPUT)
    given = {
        "since": args.since,
        "until": args.until,
        "state": args.state,
        "code": args.code,
        "phone": args.phone,
        "till": args.till,
    }
    try:
        if args.problems:
            return problem_filter_from_text(**given, include_resolved=args.include_resolved)
        return history_filter_from_text(**given)
    except ManagerInputError as error:
        flag = FLAG_FOR_FIELD.get(error.field, f"--{error.field}")
        raise CliError(f"{flag}: {error.message}", EXIT_BAD_INPUT) from None


def cmd_transactions(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import PaymentLists

        filters = _filters(args)
        async with open_store(settings, require_keys=False, beside_the_app=True) as store:
            shop_id = await shop_for(store, settings, args.shop)
            if args.full_phones:
                await require_manager_pin(store, "show whole phone numbers")
            lists = PaymentLists(store, shop_id)
            rows = lists.all_problems(filters) if args.problems else lists.all_history(filters)
            async with aclosing(rows):
                await _print(_first(rows, args.limit), args)
        return EXIT_OK

    return run(args.config, work)


async def _first(rows: AsyncIterator[PaymentRow], limit: int | None) -> AsyncIterator[PaymentRow]:
    """At most `limit` of `rows` (all without one), reading no page past the last."""
    count = 0
    async for row in rows:
        yield row
        count += 1
        if count == limit:
            return


async def _print(rows: AsyncIterator[PaymentRow], args: argparse.Namespace) -> None:
    """The rows as a table, a JSON array or CSV, each row printed as it is read (but JSON's)."""
    from smartduka_tui.manager import CSV_COLUMNS, csv_values, kenya_time, row_json

    full = args.full_phones
    if args.json:
        print(json.dumps([row_json(row, full_phones=full) async for row in rows], indent=2))
        return
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(CSV_COLUMNS)
        async for row in rows:
            writer.writerow(csv_values(row, full_phones=full))
        return
    print(
        f"{'KEY':<7} {'WHEN (KENYA)':<19} {'WHAT':<16} {'SALE':<9} {'KES':>8}  "
        f"{'PHONE':<12}  {'CODE':<6} SUMMARY"
    )
    count = 0
    async for row in rows:
        phone = (row.phone if full and row.phone else row.phone_masked) or ""
        amount = "" if row.amount is None else f"{row.amount:,}"
        print(
            f"{row.key:<7} {kenya_time(row.created_at):<19} {row.what[:16]:<16} "
            f"{(row.sale_ref or '')[:9]:<9} {amount:>8}  {phone:<12}  "
            f"{(row.result_code or '')[:6]:<6} {row.summary}"
        )
        count += 1
    print(f"{count} row{'s' if count != 1 else ''}.")
