"""`smartduka manager set-pin|reset-pin|status|resolve`: the manager PIN from the command line,
and how the PIN check every secret-revealing or payment-resolving command goes through
(`common.require_manager_pin`) reads the PIN and says a refusal.

PINs are read from the terminal without echo; without a terminal, one line of standard input
each (after any secrets the command reads first). For scripts, the current PIN may come from
SMARTDUKA_MANAGER_PIN instead. A PIN is never printed or logged; every try is audited by the
store (store/pin.py), and too many wrong ones lock the PIN for a while.

`reset-pin` is for a forgotten PIN: it needs the till's encryption key (the keyring must open
the vault), so whoever resets it can already read everything the PIN protects.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_SET_UP,
    EXIT_OK,
    CliError,
    needs_action,
    non_empty,
    open_store,
    require_manager_pin,
    run,
    shop_for,
    typed,
)

if TYPE_CHECKING:
    from smartduka_tui.cli.common import Store
    from smartduka_tui.config import Settings
    from smartduka_tui.manager import PinCheck, Secret

PIN_ENV = "SMARTDUKA_MANAGER_PIN"


def read_pin(label: str, *, from_env: bool = False) -> Secret:
    """One PIN: from SMARTDUKA_MANAGER_PIN (if `from_env`), a terminal prompt without echo, or
    one line of standard input."""
    from smartduka_tui.manager import Secret

    what = label[0].lower() + label[1:]
    if from_env and os.environ.get(PIN_ENV):
        return Secret(os.environ[PIN_ENV].strip())
    missing = (
        f"this needs the {what}: type it at a terminal, give it on standard input, or set {PIN_ENV}"
    )
    return non_empty(typed(label, missing), what)


def refusal(check: PinCheck) -> CliError:
    from smartduka_tui.manager import PinOutcome

    if check.outcome is PinOutcome.LOCKED and check.locked_until is not None:
        until = check.locked_until.strftime("%H:%M:%S UTC")
        return CliError(
            f"the manager PIN is locked until {until} after too many wrong tries: wait, or "
            "reset it with `smartduka manager reset-pin --yes`",
            EXIT_FAILED,
        )
    return CliError(check.explain(), EXIT_FAILED)


async def manager_only(store: Store, action: str, not_set: str) -> None:
    """The gate of what only a manager may do, PIN or not: CliError(`not_set`, exit 3) while
    no manager PIN is set, else `require_manager_pin`."""
    from smartduka_tui.manager import PinDesk

    if not (await PinDesk(store).status()).is_set:
        raise CliError(not_set, EXIT_NOT_SET_UP)
    await require_manager_pin(store, action)


def cmd_set_pin(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import ManagerInputError, PinDesk

        async with open_store(settings, require_keys=True) as store:
            pin = PinDesk(store)
            status = await pin.status()
            current = read_pin("Current manager PIN", from_env=True) if status.is_set else None
            new = read_pin("New manager PIN")
            repeat = read_pin("New manager PIN again")
            if new != repeat:
                raise CliError("the two new PINs are not the same; nothing changed", EXIT_BAD_INPUT)
            try:
                check = await pin.change(new, current_pin=current)
            except ManagerInputError as error:
                raise CliError(
                    f"new PIN: {error.message}; nothing changed", EXIT_BAD_INPUT
                ) from None
            if not check.accepted:
                raise refusal(check)
        print("Manager PIN changed." if status.is_set else "Manager PIN set.")
        return EXIT_OK

    return run(args.config, work)


def cmd_reset_pin(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import PinDesk

        if not args.yes:
            raise CliError(
                "this removes the manager PIN (and its lockout) so a new one can be set; "
                "run it again with --yes",
                EXIT_BAD_INPUT,
            )
        # require_keys: only someone holding the till's encryption key may reset the PIN.
        async with open_store(settings, require_keys=True) as store:
            had = await PinDesk(store).reset(reason="smartduka manager reset-pin")
        print(
            "Manager PIN removed: set a new one with `smartduka manager set-pin`."
            if had
            else "No manager PIN was set."
        )
        return EXIT_OK

    return run(args.config, work)


def cmd_status(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import PinDesk

        async with open_store(settings, require_keys=False, beside_the_app=True) as store:
            status = await PinDesk(store).status()
        info = {
            "pin_set": status.is_set,
            "set_at": status.set_at.isoformat() if status.set_at else None,
            "wrong_tries": status.failures,
            "locked_until": status.locked_until.isoformat() if status.locked_until else None,
            "lockouts_in_a_row": status.lockouts,
        }
        if args.json:
            print(json.dumps(info, indent=2))
        elif not status.is_set:
            print("No manager PIN is set: set one with `smartduka manager set-pin`.")
        else:
            print(f"Manager PIN set at {info['set_at']}.")
            if status.locked_until:
                print(f"Locked until {info['locked_until']} after too many wrong tries.")
            elif status.failures:
                print(f"{status.failures} wrong tries since the last right one.")
        return EXIT_OK

    return run(args.config, work)


def cmd_resolve(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.clock import SystemClock
        from smartduka_tui.manager import ManagerError, ManagerService, Resolution

        async with open_store(settings, require_keys=True) as store:
            shop_id = await shop_for(store, settings, args.shop)
            service = ManagerService(store, settings, SystemClock(), shop_id=shop_id)
            if not (await service.pin_status()).is_set:
                raise CliError(
                    "resolving payments needs a manager PIN: set one with "
                    "`smartduka manager set-pin` first",
                    EXIT_BAD_INPUT,
                )
            check = await service.sign_in(
                read_pin("Manager PIN", from_env=True), purpose="smartduka manager resolve"
            )
            if not check.accepted:
                raise refusal(check)
            try:
                outcome = (
                    Resolution.PAID
                    if args.paid is not None
                    else Resolution.NOT_PAID
                    if args.not_paid
                    else None
                )
                result = await service.resolve(args.key, args.note, outcome, args.paid)
            except ManagerError as error:
                raise CliError(f"{error}; nothing changed", EXIT_BAD_INPUT) from None
            finally:
                await service.sign_out("command finished")
        print(result.message)
        return EXIT_OK

    return run(args.config, work)


def register(subparsers: Any) -> None:
    manager = subparsers.add_parser(
        "manager", help="the manager PIN, and resolving problem payments"
    )
    needs_action(manager)
    actions = manager.add_subparsers(dest="manager_command", metavar="ACTION")

    set_pin = actions.add_parser(
        "set-pin", help="set the manager PIN, or change it (asks for the current one)"
    )
    set_pin.set_defaults(handler=cmd_set_pin)

    reset = actions.add_parser(
        "reset-pin", help="forget a lost manager PIN (needs the till's encryption key)"
    )
    reset.add_argument("--yes", action="store_true", help="yes, remove the PIN")
    reset.set_defaults(handler=cmd_reset_pin)

    status = actions.add_parser("status", help="whether a PIN is set, and any lockout")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=cmd_status)

    resolve = actions.add_parser(
        "resolve", help="mark a problem payment resolved, with a note (asks for the PIN)"
    )
    resolve.add_argument("key", help="the payment (A12) or problem (P3), as listed")
    resolve.add_argument("--note", required=True, help="what was done, e.g. refunded")
    found = resolve.add_mutually_exclusive_group()
    found.add_argument(
        "--paid",
        metavar="RECEIPT",
        default=None,
        help="the statement shows it paid with this receipt: the payment becomes COMPLETED",
    )
    found.add_argument(
        "--not-paid",
        action="store_true",
        help="the statement shows no payment: it becomes FAILED (safe to charge again)",
    )
    resolve.add_argument("--shop", default=None, help="shop id (default: the configured shop)")
    resolve.set_defaults(handler=cmd_resolve)
