"""`smartduka shop initiator SHOP`: set the shop's M-Pesa initiator (API operator) name and
password, sealed in the vault, for receipt checks (Transaction Status) and reversals.

Like every credential they come from standard input (`--name -`, `--password -`: one line each,
or a prompt without echo on a terminal) or, with `--from-env`, from
SMARTDUKA_SHOP_INITIATOR_NAME and SMARTDUKA_SHOP_INITIATOR_PASSWORD; never from the command line
itself. The manager PIN is asked first. Nothing is printed back but the masked name.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CliError,
    add_secret_flag,
    flag_names,
    open_store,
    read_secret,
    require_manager_pin,
    run,
    secret_in_argv,
)

if TYPE_CHECKING:
    from smartduka_tui.config import Settings

ENV_FOR = {
    "name": "SMARTDUKA_SHOP_INITIATOR_NAME",
    "password": "SMARTDUKA_SHOP_INITIATOR_PASSWORD",
}


def _read(args: argparse.Namespace) -> dict[str, Any]:
    values = {}
    for dest, env in ENV_FOR.items():
        given = getattr(args, dest)
        if given not in (None, "-"):
            raise secret_in_argv(f"--{dest}", env, "and pass --from-env. Nothing was saved.")
        secret = read_secret(f"initiator {dest}", given, env if args.from_env else None)
        if secret is None:
            raise CliError(
                f"the initiator {dest} is missing: give `--{dest} -` or set {env} with "
                "--from-env. Nothing was saved.",
                EXIT_BAD_INPUT,
            )
        values[dest] = secret
    return values


def cmd_initiator(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import TillSetup

        values = _read(args)
        async with open_store(settings) as store:
            await require_manager_pin(store, "set the shop's M-Pesa initiator")
            with flag_names({"initiator_name": "--name", "initiator_password": "--password"}):
                shown = await TillSetup(store, settings).set_initiator(
                    args.id, values["name"], values["password"]
                )
        print(f"Initiator of shop {args.id} set ({shown}); the password is sealed in the vault.")
        return EXIT_OK

    return run(args.config, work)


def register_initiator(actions: Any) -> None:
    """The `initiator` action under `smartduka shop`."""
    parser = actions.add_parser(
        "initiator",
        help="set the M-Pesa initiator name and password (receipt checks, reversals)",
    )
    parser.add_argument("id", help="shop id")
    for dest in ENV_FOR:
        add_secret_flag(parser, f"--{dest}", dest, f"initiator {dest}")
    parser.add_argument(
        "--from-env", action="store_true", help="take them from " + ", ".join(ENV_FOR.values())
    )
    parser.set_defaults(handler=cmd_initiator)
