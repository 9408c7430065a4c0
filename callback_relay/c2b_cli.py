"""`smartduka-relay c2b token|prefix`: the confirmation URL of a shortcode, platform routing."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from callback_relay.c2b import confirmation_path, issue_token, route_prefix
from callback_relay.settings import RelaySettings
from callback_relay.stores import opened_store

if TYPE_CHECKING:
    from callback_relay.cli import Handler, SettingsHandler


async def _token(settings: RelaySettings, shortcode: str, shop_id: str | None) -> str:
    async with opened_store(settings) as store:
        return await issue_token(store, shortcode, shop_id)


async def _prefix(settings: RelaySettings, shortcode: str, prefix: str, shop_id: str) -> None:
    async with opened_store(settings) as store:
        await route_prefix(store, shortcode, prefix, shop_id)


def cmd_token(args: argparse.Namespace, settings: RelaySettings) -> int:
    token = asyncio.run(_token(settings, args.shortcode, args.shop))
    url = (settings.public_url or "").rstrip("/") + confirmation_path(token)
    if args.json:
        print(json.dumps({"shortcode": args.shortcode, "shop_id": args.shop, "url": url}))
    else:
        # The URL is a capability: shown once, to register as the shortcode's ConfirmationURL.
        print(f"ConfirmationURL for {args.shortcode} (register it once; keep it private):")
        print(url)
    return 0


def cmd_prefix(args: argparse.Namespace, settings: RelaySettings) -> int:
    asyncio.run(_prefix(settings, args.shortcode, args.prefix, args.shop))
    print(
        f"payments to {args.shortcode} with BillRefNumber {args.prefix.upper()}... go to "
        f"shop {args.shop}"
    )
    return 0


def register(
    commands: Any,
    bind: Callable[[SettingsHandler], Handler],
    db_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add `c2b token` and `c2b prefix` to `smartduka-relay`'s parser."""
    c2b = commands.add_parser("c2b", help="C2B confirmation URLs (customers paying directly)")
    actions = c2b.add_subparsers(dest="c2b_command", metavar="ACTION", required=True)
    token = actions.add_parser("token", help="a new confirmation URL for a shortcode")
    token.add_argument("shortcode", help="the till number or paybill")
    token.add_argument("--shop", help="the shop it belongs to (omit for the platform paybill)")
    token.add_argument("--json", action="store_true", help="print JSON")
    db_option(token)
    token.set_defaults(handler=bind(cmd_token))
    prefix = actions.add_parser("prefix", help="route a platform paybill prefix to a shop")
    prefix.add_argument("shortcode", help="the platform paybill")
    prefix.add_argument("prefix", help="BillRefNumber prefix, 1 to 4 letters or digits")
    prefix.add_argument("shop", help="shop id")
    db_option(prefix)
    prefix.set_defaults(handler=bind(cmd_prefix))
