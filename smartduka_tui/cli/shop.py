"""`smartduka shop add|set|show`: configure shops without the app.

Credentials come from standard input (`--passkey -` or a bare `--passkey`: one line each, or a
prompt without echo on a terminal) or, with `--secrets-from-env`, from
SMARTDUKA_SHOP_CONSUMER_KEY, SMARTDUKA_SHOP_CONSUMER_SECRET and SMARTDUKA_SHOP_PASSKEY, never
from the command line itself (other users see it in `ps`, and it stays in shell history): the
old `--passkey VALUE` form is refused, saying how to pass it instead. They are never printed back:
`show` gives `****` and the last four characters. A bad field is named with what is wrong,
and nothing is saved.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CliError,
    add_secret_flag,
    flag_names,
    needs_action,
    open_store,
    read_secret,
    require_manager_pin,
    run,
    secret_in_argv,
)
from smartduka_tui.cli.initiator import register_initiator

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.manager import SettingsView, ShopChanges, ShopConfig, ShopSecrets, TillSetup

# ShopType's values, spelled out so that `--help` need not import the store (a test keeps
# the two equal).
SHOP_TYPES = ("paybill", "till", "platform")

# The flag that sets each ShopConfig field, so errors name what the user typed.
FLAG_FOR_FIELD = {
    "id": "--id",
    "name": "--name",
    "mpesa_type": "--type",
    "business_shortcode": "--shortcode",
    "till_number": "--till-number",
    "account_prefix": "--prefix",
    "enabled": "--enable/--disable",
    "consumer_key": "--consumer-key",
    "consumer_secret": "--consumer-secret",
    "passkey": "--passkey",
}
# Each credential's flag destination (also its ShopSecretField value) and environment variable.
SECRET_FLAGS = {
    "consumer_key": "SMARTDUKA_SHOP_CONSUMER_KEY",
    "consumer_secret": "SMARTDUKA_SHOP_CONSUMER_SECRET",
    "passkey": "SMARTDUKA_SHOP_PASSKEY",
}


def _read_secrets(args: argparse.Namespace) -> ShopSecrets:
    from smartduka_tui.manager import ShopSecrets

    for dest, env in SECRET_FLAGS.items():
        if getattr(args, dest) not in (None, "-"):
            raise secret_in_argv(
                FLAG_FOR_FIELD[dest],
                env,
                "and add --secrets-from-env. Nothing was saved; if that value is real, treat it "
                "as exposed and change it on the Daraja portal.",
            )
    values = {
        dest: read_secret(
            dest.replace("_", " "), getattr(args, dest), env if args.secrets_from_env else None
        )
        for dest, env in SECRET_FLAGS.items()
    }
    return ShopSecrets(**values)


def _describe(shop: SettingsView) -> dict[str, Any]:
    """A shop for people and scripts, credentials masked."""
    return {
        "id": shop.shop_id,
        "name": shop.name,
        "type": shop.mpesa_type.value,
        "business_shortcode": shop.business_shortcode,
        "till_number": shop.till_number,
        "account_prefix": shop.account_prefix,
        "enabled": shop.enabled,
        "verification_status": shop.verification_status.value,
        "verified_at": shop.verified_at.isoformat() if shop.verified_at else None,
        "credentials": {field.value: shown for field, shown in shop.secrets.items()},
        "tills": [
            {
                "id": till.till_id,
                "relay_url": till.relay_url,
                "active_callback_kid": till.active_callback_kid,
                "callback_kids": list(till.callback_kids),
            }
            for till in shop.tills
        ],
    }


def _print_shop(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    how = {
        "paybill": f"paybill {info['business_shortcode']}",
        "till": f"till {info['till_number']} (store number {info['business_shortcode']})",
        "platform": "the platform's paybill, through the relay",
    }[info["type"]]
    print(f"shop             {info['id']}  {info['name']}")
    print(f"paid into        {how}")
    print(f"account prefix   {info['account_prefix']}")
    print(f"enabled          {'yes' if info['enabled'] else 'no'}")
    verified = info["verification_status"]
    if info["verified_at"]:
        verified += f" at {info['verified_at']}"
    print(f"verification     {verified}")
    if info["type"] != "platform":
        for name, shown in info["credentials"].items():
            print(f"{name.replace('_', ' '):<17}{shown or 'not set'}")
    for till in info["tills"]:
        print(
            f"till             {till['id']}  relay {till['relay_url']}  kid "
            f"{till['active_callback_kid']}"
        )


def _config_from_args(args: argparse.Namespace) -> ShopConfig:
    from smartduka_tui.manager import ShopConfig
    from smartduka_tui.model import ShopType

    return ShopConfig(
        id=args.id,
        name=args.name,
        mpesa_type=ShopType(args.type),
        account_prefix=args.prefix,
        business_shortcode=args.shortcode,
        till_number=args.till_number,
        enabled=not args.disabled,
    )


def cmd_add(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import TillSetup

        secrets = _read_secrets(args)
        async with open_store(settings, require_keys=bool(secrets.given())) as store:
            await require_manager_pin(store, "add a shop")
            with flag_names(FLAG_FOR_FIELD):
                shop = await TillSetup(store, settings).add_shop(_config_from_args(args), secrets)
        if not args.json:
            print(f"Shop {shop.shop_id} added.")
        _print_shop(_describe(shop), args.json)
        return EXIT_OK

    return run(args.config, work)


def _changes(args: argparse.Namespace) -> ShopChanges:
    """What the flags name ('' clears a number)."""
    from smartduka_tui.manager import ShopChanges
    from smartduka_tui.model import ShopType

    return ShopChanges(
        name=args.name,
        mpesa_type=None if args.type is None else ShopType(args.type),
        account_prefix=args.prefix,
        business_shortcode=args.shortcode,
        till_number=args.till_number,
        enabled=args.enabled,
    )


def cmd_set(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import TillSetup

        secrets = _read_secrets(args)
        async with open_store(settings, require_keys=bool(secrets.given())) as store:
            await require_manager_pin(store, "change a shop")
            with flag_names(FLAG_FOR_FIELD):
                changed, shop = await TillSetup(store, settings).change_shop(
                    args.id, _changes(args), secrets, clear_credentials=args.clear_credentials
                )
        if not args.json:
            print(f"Shop {shop.shop_id} {'updated' if changed else 'unchanged'}.")
        _print_shop(_describe(shop), args.json)
        return EXIT_OK

    return run(args.config, work)


def cmd_show(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import TillSetup

        async with open_store(settings, require_keys=False) as store:
            await require_manager_pin(store, "show a shop's configuration")
            setup = TillSetup(store, settings)
            if args.id is None:
                await _list_shops(setup, args.json)
                return EXIT_OK
            shop = await setup.shop(args.id)
            if shop is None:
                raise CliError(f"there is no shop {args.id!r} on this till", EXIT_BAD_INPUT)
            _print_shop(_describe(shop), args.json)
        return EXIT_OK

    return run(args.config, work)


async def _list_shops(setup: TillSetup, as_json: bool) -> None:
    shops = [await setup.shop(shop_id) for shop_id in await setup.shop_ids()]
    found = [shop for shop in shops if shop is not None]
    if as_json:
        print(json.dumps([_describe(shop) for shop in found], indent=2))
        return
    if not found:
        print("No shops yet: add one with `smartduka shop add`.")
    for shop in found:
        state = "" if shop.enabled else ", disabled"
        print(f"{shop.shop_id}  {shop.name}  ({shop.mpesa_type.value}{state})")


def _secret_options(parser: argparse.ArgumentParser) -> None:
    for dest in SECRET_FLAGS:
        add_secret_flag(parser, FLAG_FOR_FIELD[dest], dest, dest.replace("_", " "))
    parser.add_argument(
        "--secrets-from-env",
        action="store_true",
        help="take credentials not asked for with a flag from " + ", ".join(SECRET_FLAGS.values()),
    )


def register(subparsers: Any) -> None:
    shop = subparsers.add_parser("shop", help="add, change or show a shop's M-Pesa configuration")
    needs_action(shop)
    actions = shop.add_subparsers(dest="shop_command", metavar="ACTION")

    add = actions.add_parser("add", help="add a shop")
    add.add_argument("--id", required=True, help="shop id (from `smartduka-relay shop add`)")
    add.add_argument("--name", required=True, help="the shop's name")
    add.add_argument(
        "--type",
        required=True,
        choices=SHOP_TYPES,
        help="paybill, till (Buy Goods) or platform (the relay's paybill)",
    )
    add.add_argument("--shortcode", help="paybill number, or for a till the store number")
    add.add_argument("--till-number", help="Buy Goods till number (type till)")
    add.add_argument(
        "--prefix", required=True, help="account reference prefix, 1-4 letters or digits"
    )
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    add.add_argument("--json", action="store_true", help="print the result as JSON")
    _secret_options(add)
    add.set_defaults(handler=cmd_add)

    change = actions.add_parser("set", help="change a shop (only what is given changes)")
    change.add_argument("id", help="shop id")
    change.add_argument("--name")
    change.add_argument("--type", choices=SHOP_TYPES)
    change.add_argument("--shortcode", help="new shortcode ('' clears it)")
    change.add_argument("--till-number", help="new till number ('' clears it)")
    change.add_argument("--prefix")
    state = change.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    change.add_argument(
        "--clear-credentials",
        action="store_true",
        help="remove the stored credentials (before storing any given)",
    )
    change.add_argument("--json", action="store_true", help="print the result as JSON")
    _secret_options(change)
    change.set_defaults(handler=cmd_set, enabled=None)

    show = actions.add_parser("show", help="show a shop (credentials masked), or list shops")
    show.add_argument("id", nargs="?", help="shop id (none: list every shop)")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.set_defaults(handler=cmd_show)
    register_initiator(actions)
