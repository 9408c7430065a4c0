"""`smartduka pull [--since WHEN]`: Pull Transactions now, headless (cron, or after an outage).

Reads the shortcode's M-Pesa statement from WHEN (default: the last 48 hours, all Daraja
keeps) page by page, printing progress, and reconciles it against this till: receipts
filled, money without a sale and sales paid twice found (problems for the manager). A payment
another till of the shop holds (the relay's receipt index says which) is "known at another
till", not a problem; when the relay cannot be asked, the summary says so. WHEN is
an ISO date and time (without a zone it is Kenya time), or an age such as `90m`, `6h`, `2d`.
A WHEN in the future or more than 48 hours ago is refused before anything is asked.

Exit codes: 0 pulled; 1 the pull failed (M-Pesa refused, or its statement could not be used:
nothing was taken); 2 bad input; 3 the till is not set up.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_SET_UP, EXIT_OK
from smartduka_tui.cli.pay import add_simulator_option, fail, run_in_till

if TYPE_CHECKING:
    from smartduka_tui.payments.pull import PullProgress, PullReport
    from smartduka_tui.till import Till

_AGE = re.compile(r"^(\d{1,6})\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pull",
        help="pull the M-Pesa statement (last 48 hours) and reconcile it now",
        description="Pull Transactions for this till's shortcode and reconcile them.",
    )
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="from this time (ISO, Kenya time without a zone) or age (90m, 6h, 2d); "
        "default and limit: 48 hours ago",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_simulator_option(parser)
    parser.set_defaults(handler=run)


def parse_since(text: str, now: datetime) -> datetime:
    """WHEN as an aware time; ValueError saying what is wrong."""
    from smartduka_tui.mpesa.kenya_time import KENYA_TZ

    cleaned = text.strip().lower()
    age = _AGE.fullmatch(cleaned)
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither a date and time (2026-01-15 08:30) nor an age "
            "(90m, 6h, 2d)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=KENYA_TZ)


def run(args: argparse.Namespace) -> int:
    from smartduka_tui.clock import SystemClock

    since = None
    if args.since is not None:
        try:
            since = parse_since(args.since, SystemClock().now())
        except ValueError as error:
            return fail(str(error), EXIT_BAD_INPUT)
    return run_in_till(args, partial(_pull, args, since), read_feed=False)


def _progress(as_json: bool) -> Any:
    out = sys.stderr if as_json else sys.stdout

    def show(progress: PullProgress) -> None:
        print(f"page {progress.pages}: {progress.rows:,} rows so far", file=out, flush=True)

    return show


def summary(report: PullReport) -> str:
    text = (
        f"pulled {report.rows:,} rows ({report.pages} pages) for {report.shortcode}: "
        f"{report.new_rows:,} new, {report.receipts_filled:,} receipt numbers filled, "
        f"{report.problems_found:,} problems found ({report.money_without_sale:,} money without "
        f"a sale, {report.paid_twice:,} sales paid twice); {report.known_elsewhere:,} known "
        "at another till"
    )
    if report.resolved_elsewhere:
        text += (
            f", {report.resolved_elsewhere:,} earlier money-without-a-sale problems resolved "
            "(another till holds them)"
        )
    if report.shop_check is not None:
        text += f"\nnote: {report.shop_check}"
    return text


def as_json(report: PullReport) -> dict[str, Any]:
    return {
        **asdict(report),
        "start": report.start.isoformat(),
        "end": report.end.isoformat(),
        "problems_found": report.problems_found,
    }


async def _pull(args: argparse.Namespace, since: datetime | None, till: Till) -> int:
    from smartduka_tui.payments.pull import PullFailed, PullInputError

    # It asks the shop's receipt index the till was opened with (none without a relay).
    pull = till.statement_pull()
    if pull is None:
        return fail(
            "this shop takes M-Pesa on the platform's paybill: its statement is "
            "the platform's, not this till's to pull",
            EXIT_NOT_SET_UP,
        )
    try:
        report = await pull.pull(since, progress=_progress(args.json))
    except PullInputError as error:
        return fail(error.message, EXIT_BAD_INPUT)
    except PullFailed as error:
        return fail(f"pull failed: {error.message}", EXIT_FAILED)
    if args.json:
        print(json.dumps(as_json(report), indent=2, sort_keys=True))
    else:
        print(summary(report))
    return EXIT_OK
