"""`smartduka shift ...`: open a till's shift with a float, the X report, close it with the
cash counted (the Z report), list the shifts, show or export a Z report.

It works beside the running app (SQLite's WAL serves both; the data folder's lock stays the
app's), so a manager can close the day from a terminal while the till is up. Each change is
one transaction with its audit entry; a printer that fails never undoes a close.

Opening and closing are the manager's, as the shift screens are (they sit behind the manager's
sign-in): both need a manager PIN set and ask for it (or SMARTDUKA_MANAGER_PIN), after the
figures and the shift's state are checked, so a refusal for those asks for nothing. Closing
writes the gapless Z report: without the right PIN nothing is written.

Exit codes: 0 done (a close whose report did not print is still done: a warning says so);
1 refused (no open shift, one already open, a Z this till does not have, a wrong or locked
manager PIN); 2 bad input; 3 no manager PIN set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    open_store,
    run,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from smartduka_tui.cli.common import Store
    from smartduka_tui.config import Settings
    from smartduka_tui.payments.shifts import Shift, ShiftDesk


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "shift",
        help="open and close the till's shift; the X and Z reports",
        description="Shifts: open with a float, X report mid-shift, close with the cash "
        "counted (Z report), list, show and export.",
    )
    parser.add_argument("--shop", default=None, help="shop id (default: the configured shop)")
    parser.add_argument("--till", default=None, help="till id (default: the one enrolled here)")
    actions = parser.add_subparsers(dest="shift_command", metavar="ACTION", required=True)

    opening = actions.add_parser("open", help="open the till's shift with a float")
    opening.add_argument(
        "--float",
        dest="opening_float",
        required=True,
        metavar="KES",
        help="the cash in the drawer at the start, whole shillings",
    )
    opening.add_argument("--cashier", default="Cashier", help="who runs the till this shift")
    opening.add_argument("--json", action="store_true", help="print the shift as JSON")
    opening.set_defaults(handler=cmd_open)

    x = actions.add_parser("x", help="the X report of the open shift (changes nothing)")
    _report_flags(x)
    x.set_defaults(handler=cmd_x)

    closing = actions.add_parser("close", help="close the open shift with the cash counted")
    closing.add_argument(
        "--counted",
        required=True,
        metavar="KES",
        help="the cash counted in the drawer, whole shillings",
    )
    _report_flags(closing, "the Z report", "the Z report")
    closing.set_defaults(handler=cmd_close)

    listing = actions.add_parser("list", help="the till's shifts, newest first")
    listing.add_argument("--limit", type=int, default=30, metavar="N", help="at most N shifts")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_list)

    show = actions.add_parser("show", help="a closed shift's Z report, as it was at close")
    show.add_argument("z_number", metavar="Z", help="the Z number")
    _report_flags(show)
    show.set_defaults(handler=cmd_show)

    export = actions.add_parser("export", help="a Z report as CSV, to a new file")
    export.add_argument("z_number", metavar="Z", help="the Z number")
    export.add_argument(
        "--csv",
        dest="csv_file",
        required=True,
        metavar="FILE",
        help="the CSV file to write (an existing file is never overwritten)",
    )
    export.set_defaults(handler=cmd_export)


def _report_flags(
    parser: argparse.ArgumentParser, it: str = "it", report: str = "the report"
) -> None:
    parser.add_argument(
        "--print",
        dest="to_printer",
        action="store_true",
        help=f"also print {it} on the receipt printer",
    )
    parser.add_argument("--json", action="store_true", help=f"print {report} as JSON")


def _z(text: str) -> int:
    cleaned = text.strip().upper().removeprefix("Z")
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise CliError(f"a Z number is a whole number from 1 (got {text!r})", EXIT_BAD_INPUT)
    return int(cleaned)


async def _manager_checked(desk: ShiftDesk, store: Store, what: str) -> None:
    """The manager's PIN, asked as `smartduka reverse` asks it; CliError saying why when
    none is set or it is not given right (nothing changed then)."""
    from smartduka_tui.cli.manager import manager_only

    try:
        await manager_only(
            store,
            f"shift: {what} on till {desk.till_id}",
            f"{what} is for a manager: set a manager PIN first (`smartduka manager set-pin`).",
        )
    except CliError as error:
        raise CliError(f"{error.message} Nothing changed.", error.exit_code) from None


def _with_desk(
    args: argparse.Namespace,
    action: Callable[[ShiftDesk], Awaitable[int]],
    *,
    manager: tuple[str, Callable[[ShiftDesk], Awaitable[None]]] | None = None,
) -> int:
    """Run `action(desk)`. With `manager` (what is done, and the check of what the action
    would refuse), that check first, then the manager's PIN, then the action."""

    async def work(settings: Settings) -> int:
        from smartduka_tui.payments.shifts import ShiftError, ShiftInputError, desk_for

        async with open_store(settings, beside_the_app=True) as store:
            try:
                desk = await desk_for(
                    store,
                    settings.printer,
                    shop_id=args.shop or settings.shop_id,
                    till_id=args.till,
                )
                if manager is not None:
                    what, check = manager
                    await check(desk)
                    await _manager_checked(desk, store, what)
                return await action(desk)
            except ShiftInputError as error:
                raise CliError(error.message, EXIT_BAD_INPUT) from None
            except ShiftError as error:
                raise CliError(error.message, EXIT_FAILED) from None

    return run(args.config, work)


def _shift_json(shift: Shift) -> dict[str, Any]:
    return {
        "shift_id": shift.id,
        "shop_id": shift.shop_id,
        "till_id": shift.till_id,
        "cashier": shift.cashier,
        "opened_at": shift.opened_at.isoformat(),
        "float": shift.opening_float,
        "closed_at": None if shift.closed_at is None else shift.closed_at.isoformat(),
        "z_number": shift.z_number,
        "expected_cash": shift.expected_cash,
        "counted_cash": shift.counted_cash,
        "difference": None
        if shift.counted_cash is None or shift.expected_cash is None
        else shift.counted_cash - shift.expected_cash,
    }


def _warn(message: str) -> None:
    print(f"smartduka: warning: {message}", file=sys.stderr)


def cmd_open(args: argparse.Namespace) -> int:
    async def action(desk: ShiftDesk) -> int:
        shift = await desk.open(args.opening_float, args.cashier)
        if args.json:
            print(json.dumps(_shift_json(shift), indent=2, sort_keys=True))
        else:
            print(
                f"Shift opened on till {shift.till_id} for {shift.cashier} with a float of "
                f"KES {shift.opening_float:,}."
            )
        return EXIT_OK

    def check(desk: ShiftDesk) -> Awaitable[None]:
        return desk.check_open(args.opening_float, args.cashier)

    return _with_desk(args, action, manager=("opening a shift", check))


def _print_report(report: Any, as_json: bool) -> None:
    from smartduka_tui.payments.shift_report import report_to_dict
    from smartduka_tui.receipts.shift_report import render_text

    if as_json:
        print(json.dumps(report_to_dict(report), indent=2, sort_keys=True))
    else:
        print(render_text(report), end="")


async def _out(desk: ShiftDesk, report: Any, args: argparse.Namespace) -> None:
    from smartduka_tui.payments.shifts import ShiftPrintError

    _print_report(report, args.json)
    if getattr(args, "to_printer", False):
        try:
            await desk.print_report(report, via="cli")
        except ShiftPrintError as error:
            _warn(error.message)


def cmd_x(args: argparse.Namespace) -> int:
    async def action(desk: ShiftDesk) -> int:
        report = await desk.x_report(via="cli")
        await _out(desk, report, args)
        return EXIT_OK

    return _with_desk(args, action)


def cmd_close(args: argparse.Namespace) -> int:
    async def action(desk: ShiftDesk) -> int:
        from smartduka_tui.receipts.shift_report import closed_words

        closed = await desk.close(args.counted, via="cli", print_report=args.to_printer)
        report = closed.report
        _print_report(report, args.json)
        if not args.json:
            print(closed_words(report))
        if closed.print_error is not None:
            _warn(
                f"the shift is closed, but its Z report did not print: {closed.print_error} "
                f"(`smartduka shift show {report.z_number} --print`)"
            )
        return EXIT_OK

    def check(desk: ShiftDesk) -> Awaitable[None]:
        return desk.check_close(args.counted)

    return _with_desk(args, action, manager=("closing a shift", check))


def cmd_list(args: argparse.Namespace) -> int:
    async def action(desk: ShiftDesk) -> int:
        from smartduka_tui.manager.words import kenya_time
        from smartduka_tui.receipts.shift_report import shillings

        if args.limit < 1:
            raise CliError("--limit: must be 1 or more", EXIT_BAD_INPUT)
        shifts = await desk.recent(args.limit)
        if args.json:
            print(json.dumps([_shift_json(s) for s in shifts], indent=2, sort_keys=True))
            return EXIT_OK
        if not shifts:
            print(f"Till {desk.till_id} has no shifts yet.")
            return EXIT_OK
        print(
            f"{'Z':>4}  {'opened':<16}  {'closed':<16}  {'cashier':<12}"
            f"  {'float':>11}  {'expected':>11}  {'counted':>11}"
        )
        for s in shifts:
            print(
                f"{'open' if s.z_number is None else s.z_number:>4}"
                f"  {kenya_time(s.opened_at)[:16]:<16}"
                f"  {'' if s.closed_at is None else kenya_time(s.closed_at)[:16]:<16}"
                f"  {s.cashier[:12]:<12}  {shillings(s.opening_float):>11}"
                f"  {'' if s.expected_cash is None else shillings(s.expected_cash):>11}"
                f"  {'' if s.counted_cash is None else shillings(s.counted_cash):>11}"
            )
        return EXIT_OK

    return _with_desk(args, action)


def cmd_show(args: argparse.Namespace) -> int:
    async def action(desk: ShiftDesk) -> int:
        await _out(desk, await desk.z_report(_z(args.z_number)), args)
        return EXIT_OK

    return _with_desk(args, action)


def cmd_export(args: argparse.Namespace) -> int:
    async def action(desk: ShiftDesk) -> int:
        z_number = _z(args.z_number)
        report = await desk.z_report(z_number)
        written = await desk.export_csv(report, Path(args.csv_file), via="cli")
        print(f"Wrote Z {z_number} to {written}.")
        return EXIT_OK

    return _with_desk(args, action)
