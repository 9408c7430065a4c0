"""`smartduka-relay platform set|show`, `shop set`, and `shop add --platform --prefix XX`.

The platform's consumer key, consumer secret and passkey are read from
`SMARTDUKA_RELAY_PLATFORM_CONSUMER_KEY`, `..._CONSUMER_SECRET` and `..._PASSKEY` when set, else
from standard input (one line each, in that order; a prompt without echo on a terminal). They
are never taken as command-line arguments (other users can read those) and never printed back:
`platform show` masks them to their last four characters. A bad value is named, not repeated,
and nothing is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import SecretStr

from callback_relay.platform import (
    DEFAULT_DARAJA_URL,
    DEFAULT_PUSHES_PER_MINUTE,
    PLATFORM_FIELDS,
    BrokerStore,
    PlatformConfigError,
    PlatformShop,
    check_daraja_url,
    check_prefix,
    check_pushes_per_minute,
    check_shortcode,
    describe_platform,
    open_platform,
    seal_platform,
)
from callback_relay.registry import now_ms, open_box
from callback_relay.settings import RelaySettings
from callback_relay.store import RelayStore
from callback_relay.stores import opened_store
from smartduka_tui.clock import SystemClock
from smartduka_tui.secretbox import SecretBox

if TYPE_CHECKING:
    from callback_relay.cli import Handler, SettingsHandler

SECRET_ENV = {name: f"SMARTDUKA_RELAY_PLATFORM_{name.upper()}" for name in PLATFORM_FIELDS}


async def _with_stores(
    settings: RelaySettings,
    work: Callable[[RelayStore, BrokerStore], Awaitable[int]],
) -> int:
    """The relay's store (SQLite or PostgreSQL, as the settings say) and its broker tables."""
    async with opened_store(settings) as relay_store:
        return await work(relay_store, relay_store.broker())


async def _box(relay_store: RelayStore, settings: RelaySettings, *, create: bool) -> SecretBox:
    box = await open_box(relay_store, settings.db, settings.env_key(), create=create)
    if box is None:
        raise PlatformConfigError(
            "the platform is not set up at this relay: run `smartduka-relay platform set` first"
        )
    return box


def read_platform_secrets(
    stdin: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, SecretStr]:
    """The three credentials from the environment, else standard input (never echoed)."""
    stream = stdin if stdin is not None else sys.stdin
    env = environ if environ is not None else os.environ
    values: dict[str, SecretStr] = {}
    for name in PLATFORM_FIELDS:
        label = name.replace("_", " ")
        if SECRET_ENV[name] in env:
            text = env[SECRET_ENV[name]]
        elif stream.isatty():
            text = getpass.getpass(f"platform {label}: ")
        else:
            line = stream.readline()
            if not line:
                raise PlatformConfigError(
                    f"{label}: expected on standard input (consumer key, consumer secret and "
                    f"passkey, one line each) or in {SECRET_ENV[name]}"
                )
            text = line.rstrip("\r\n")
        text = text.strip()
        if not text:
            raise PlatformConfigError(f"{label}: the value given is empty")
        values[name] = SecretStr(text)
    return values


def cmd_platform_set(args: argparse.Namespace, settings: RelaySettings) -> int:
    shortcode = check_shortcode(args.shortcode)
    daraja_url = check_daraja_url(args.daraja_url, settings.mode)
    secrets = read_platform_secrets()

    async def work(relay_store: RelayStore, broker_store: BrokerStore) -> int:
        box = await _box(relay_store, settings, create=True)
        record = seal_platform(box, shortcode, daraja_url, secrets, now_ms(SystemClock()))
        await broker_store.set_platform(record)
        print(f"Platform paybill {shortcode} set (Daraja at {daraja_url}); credentials encrypted.")
        return 0

    return asyncio.run(_with_stores(settings, work))


def cmd_platform_show(args: argparse.Namespace, settings: RelaySettings) -> int:
    async def work(relay_store: RelayStore, broker_store: BrokerStore) -> int:
        record = await broker_store.platform()
        account = None
        if record is not None:
            account = open_platform(await _box(relay_store, settings, create=False), record)
        shown = describe_platform(record, account)
        shown["shops"] = [
            {"shop_id": s.shop_id, "prefix": s.prefix, "pushes_per_minute": s.pushes_per_minute}
            for s in await broker_store.shops()
        ]
        if args.json:
            print(json.dumps(shown, indent=2))
        elif not shown["configured"]:
            print("The platform's paybill is not set up: run `smartduka-relay platform set`.")
        else:
            print(f"platform paybill  {shown['shortcode']}")
            print(f"daraja url        {shown['daraja_url']}")
            for name, masked in shown["credentials"].items():
                print(f"{name.replace('_', ' '):<17} {masked}")
            for shop in shown["shops"]:
                print(
                    f"shop {shop['shop_id']}  prefix {shop['prefix']}, "
                    f"{shop['pushes_per_minute']} pushes a minute"
                )
        return 0

    return asyncio.run(_with_stores(settings, work))


@dataclass(frozen=True, slots=True)
class PlatformChoice:
    """A shop's use of the platform as the command line asked for it (already validated)."""

    prefix: str
    pushes_per_minute: int

    async def apply(self, store: RelayStore, shop_id: str) -> None:
        """Mark the shop as paid through the platform, in the store the enrolment used."""
        await _mark(store, store.broker(), shop_id, self)


async def _mark(
    relay_store: RelayStore, broker_store: BrokerStore, shop_id: str, choice: PlatformChoice
) -> None:
    if await relay_store.get_shop(shop_id) is None:
        raise PlatformConfigError(f"no shop with id {shop_id[:32]!r}")
    await broker_store.set_shop(
        PlatformShop(shop_id, choice.prefix, choice.pushes_per_minute, now_ms(SystemClock()))
    )


def platform_choice(args: argparse.Namespace) -> PlatformChoice | None:
    """`--platform --prefix XX [--pushes-per-minute N]` checked before anything is written."""
    if not args.platform:
        if args.prefix is not None or args.pushes_per_minute is not None:
            raise PlatformConfigError("--prefix and --pushes-per-minute need --platform")
        return None
    if args.prefix is None:
        raise PlatformConfigError(
            "--prefix is required with --platform (it starts every AccountReference)"
        )
    per_minute = (
        DEFAULT_PUSHES_PER_MINUTE if args.pushes_per_minute is None else args.pushes_per_minute
    )
    return PlatformChoice(check_prefix(args.prefix), check_pushes_per_minute(per_minute))


def cmd_shop_set(args: argparse.Namespace, settings: RelaySettings) -> int:
    if args.own_credentials and (args.platform or args.prefix or args.pushes_per_minute):
        raise PlatformConfigError("--own-credentials cannot be combined with --platform")
    choice = None if args.own_credentials else platform_choice(args)
    if choice is None and not args.own_credentials:
        raise PlatformConfigError("say --platform --prefix XX, or --own-credentials")

    async def work(relay_store: RelayStore, broker_store: BrokerStore) -> int:
        if choice is not None:
            await _mark(relay_store, broker_store, args.shop, choice)
            print(
                f"Shop {args.shop} is paid through the platform's paybill (prefix "
                f"{choice.prefix}, {choice.pushes_per_minute} pushes a minute)."
            )
            return 0
        if await relay_store.get_shop(args.shop) is None:
            raise PlatformConfigError(f"no shop with id {args.shop[:32]!r}")
        removed = await broker_store.remove_shop(args.shop)
        state = "no longer uses" if removed else "did not use"
        print(f"Shop {args.shop} {state} the platform's paybill.")
        return 0

    return asyncio.run(_with_stores(settings, work))


def add_platform_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform",
        action="store_true",
        help="the shop is paid through the platform's paybill (its tills push via the relay)",
    )
    parser.add_argument("--prefix", help="AccountReference prefix for a platform shop (1-4)")
    parser.add_argument(
        "--pushes-per-minute",
        type=int,
        help=f"the platform shop's push limit (default {DEFAULT_PUSHES_PER_MINUTE})",
    )


def register(
    commands: Any,
    shop_commands: Any,
    shop_add: argparse.ArgumentParser,
    bind: Callable[[SettingsHandler], Handler],
    db_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the broker's commands and options to `smartduka-relay`'s parser (`bind` and
    `db_option` are the parent's, so every command reads its settings and `--db` alike)."""
    add_platform_options(shop_add)

    shop_set = shop_commands.add_parser(
        "set", help="choose whether a shop is paid through the platform's paybill"
    )
    shop_set.add_argument("shop", help="shop id")
    add_platform_options(shop_set)
    shop_set.add_argument(
        "--own-credentials",
        action="store_true",
        help="the shop uses its own paybill or till (the broker refuses its tills)",
    )
    db_option(shop_set)
    shop_set.set_defaults(handler=bind(cmd_shop_set))

    platform = commands.add_parser("platform", help="the platform's paybill for the broker")
    actions = platform.add_subparsers(dest="platform_command", metavar="ACTION", required=True)
    set_ = actions.add_parser(
        "set",
        help="store the platform's shortcode and credentials (secrets from env or stdin)",
    )
    set_.add_argument("--shortcode", required=True, help="the platform's paybill number")
    set_.add_argument(
        "--daraja-url",
        default=DEFAULT_DARAJA_URL,
        help=f"Daraja base URL (default {DEFAULT_DARAJA_URL})",
    )
    db_option(set_)
    set_.set_defaults(handler=bind(cmd_platform_set))
    show = actions.add_parser("show", help="the platform's set-up, credentials masked")
    show.add_argument("--json", action="store_true", help="print as JSON")
    db_option(show)
    show.set_defaults(handler=bind(cmd_platform_show))
