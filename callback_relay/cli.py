"""`smartduka-relay`: serve the relay, enrol shops and tills, rotate secrets, replay dead letters.

Every command takes `--db PATH` (default `$SMARTDUKA_RELAY_DB` or `./relay.db`). Errors are one
clear line on stderr and exit code 2; nothing is changed when a command fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callback_relay import broker_cli, c2b_cli
from callback_relay.broker import platform_url_problem
from callback_relay.c2b import C2BSetupError
from callback_relay.crypto import RelayKeyError
from callback_relay.registry import Registry, RegistryError, now_ms, open_box
from callback_relay.settings import RelaySettings
from callback_relay.store import StoreUnavailable, StoreVersionError
from callback_relay.stores import opened_store
from smartduka_tui.clock import SystemClock
from smartduka_tui.mpesa.enrolment import Enrolment
from smartduka_tui.secretbox import SealBrokenError

EXIT_ERROR = 2


class CliError(Exception):
    """A command that cannot run; the message is shown as is."""


def _settings(args: argparse.Namespace, **extra: Any) -> RelaySettings:
    overrides: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "db", None):
        overrides["db"] = Path(args.db)
    try:
        return RelaySettings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"setting {where}: {first['msg']}") from None


# A sub-command's handler as the sub-modules write it (given settings) and as argparse calls it.
SettingsHandler = Callable[[argparse.Namespace, RelaySettings], int]
Handler = Callable[[argparse.Namespace], int]


def _bind(handler: SettingsHandler) -> Handler:
    """`handler` called with the settings its command's options name (`--db` and the env)."""
    return lambda args: handler(args, _settings(args))


async def _with_registry(
    settings: RelaySettings,
    work: Callable[[Registry], Awaitable[int]],
    *,
    create_key: bool,
) -> int:
    async with opened_store(settings) as store:
        box = await open_box(store, settings.db, settings.env_key(), create=create_key)
        if box is None:
            raise CliError(
                f"the database {settings.db} has no shops yet (no relay key); run `shop add` first"
            )
        return await work(Registry(store, box, SystemClock(), settings.public_url))


def _open_out(out: str | None) -> int | None:
    """Create the `--out` file before enrolling, so a bad path enrols nothing; never overwrite."""
    if not out:
        return None
    try:
        return os.open(Path(out), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"{out} already exists: refusing to overwrite an enrolment file") from None
    except OSError as exc:
        raise CliError(f"cannot create {out}: {exc.strerror}") from None


async def _enrol_to(
    registry: Registry,
    out: str | None,
    enrol: Callable[[], Awaitable[Enrolment]],
    then: Callable[[Enrolment], Awaitable[None]] | None = None,
    *,
    revoke_on_failure: bool = True,
) -> Enrolment:
    """Enrol and write the `--out` file; on any failure, no file and no usable till remain
    (a rekey that fails is not revoked: its old key is already refused, so rekey again)."""
    fd = _open_out(out)
    enrolment: Enrolment | None = None
    try:
        enrolment = await enrol()
        if then is not None:
            await then(enrolment)
        if fd is not None:
            with os.fdopen(fd, "w") as handle:
                fd = None
                handle.write(enrolment.to_json() + "\n")
    except BaseException:
        if fd is not None:
            os.close(fd)
        if out:
            await asyncio.to_thread(Path(out).unlink, missing_ok=True)
        if enrolment is not None and revoke_on_failure:
            # Its key was never handed over: revoke the till rather than leave it live.
            await registry.revoke_till(enrolment.till_id)
        raise
    return enrolment


def _print_enrolment(enrolment: Enrolment, as_json: bool, out: str | None, title: str) -> None:
    if as_json:
        print(enrolment.to_json())
        return
    print(title)
    print(f"  shop id          {enrolment.shop_id}  ({enrolment.shop_name})")
    print(f"  till id          {enrolment.till_id}")
    print(f"  till key         {enrolment.till_key}")
    print(f"  callback kid     {enrolment.callback_kid}")
    print(f"  callback secret  {enrolment.callback_secret}")
    if enrolment.relay_url:
        print(f"  relay url        {enrolment.relay_url}")
    print("The till key and callback secret are shown only now; keep them safe.")
    if out:
        print(f"Enrolment file written to {out} (mode 0600): run `smartduka enrol {out}`.")


def cmd_shop_add(args: argparse.Namespace) -> int:
    settings = _settings(args, public_url=args.public_url)
    platform = broker_cli.platform_choice(args)

    async def work(registry: Registry) -> int:
        async def apply_platform(enrolment: Enrolment) -> None:
            if platform is not None:
                await platform.apply(registry.store, enrolment.shop_id)

        enrolment = await _enrol_to(
            registry, args.out, lambda: registry.add_shop(args.name), apply_platform
        )
        _print_enrolment(enrolment, args.json, args.out, "Shop added.")
        return 0

    return asyncio.run(_with_registry(settings, work, create_key=True))


def cmd_till_add(args: argparse.Namespace) -> int:
    settings = _settings(args, public_url=args.public_url)

    async def work(registry: Registry) -> int:
        enrolment = await _enrol_to(registry, args.out, lambda: registry.add_till(args.shop))
        _print_enrolment(enrolment, args.json, args.out, "Till added.")
        return 0

    return asyncio.run(_with_registry(settings, work, create_key=False))


def cmd_till_rekey(args: argparse.Namespace) -> int:
    settings = _settings(args, public_url=args.public_url)

    async def work(registry: Registry) -> int:
        enrolment = await _enrol_to(
            registry, args.out, lambda: registry.rekey_till(args.till), revoke_on_failure=False
        )
        _print_enrolment(enrolment, args.json, args.out, "Till rekeyed.")
        if not args.json:
            print("Its previous till key and callback secret are refused from now on.")
        return 0

    return asyncio.run(_with_registry(settings, work, create_key=False))


def cmd_till_revoke(args: argparse.Namespace) -> int:
    async def work(registry: Registry) -> int:
        await registry.revoke_till(args.till)
        print(f"Till {args.till} revoked: its key no longer reads the feed.")
        return 0

    return asyncio.run(_with_registry(_settings(args), work, create_key=False))


def cmd_shop_rotate(args: argparse.Namespace) -> int:
    async def work(registry: Registry) -> int:
        new = await registry.rotate_secret(args.shop)
        if args.json:
            print(json.dumps({"shop_id": new.shop_id, "shop_kid": new.kid}, indent=2))
        else:
            print(f"New shop secret {new.kid} for shop {new.shop_id} (it stays at the relay).")
            print(
                "Run `till rekey TILL --out FILE` for each till to give it its own key under "
                f"{new.kid}; older kids stay valid until `shop retire-kid`."
            )
        return 0

    return asyncio.run(_with_registry(_settings(args), work, create_key=False))


def cmd_shop_retire(args: argparse.Namespace) -> int:
    async def work(registry: Registry) -> int:
        await registry.retire_kid(args.shop, args.kid)
        print(f"Kid {args.kid} of shop {args.shop} retired: paths signed with it now get 404.")
        return 0

    return asyncio.run(_with_registry(_settings(args), work, create_key=False))


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> int:
        async with opened_store(settings) as store:
            if args.till is not None and await store.get_till(args.till) is None:
                raise CliError(f"no till with id {args.till[:32]!r}")
            count = await store.replay_dead(args.till, now_ms(SystemClock()))
        scope = f"till {args.till}" if args.till else "all tills"
        print(f"Replayed {count} dead-lettered event(s) for {scope}.")
        return 0

    return asyncio.run(run())


def cmd_stats(args: argparse.Namespace) -> int:
    """Per-shop inbox figures: what `/metrics` no longer labels by shop or till."""
    settings = _settings(args)

    async def run() -> int:
        async with opened_store(settings) as store:
            rows = await store.inbox_stats()
        shops: dict[str, list[int]] = {}
        for row in rows:
            figures = shops.setdefault(row.shop_id, [0, 0, 0])
            figures[0] += 1
            figures[1] += row.unacked
            figures[2] += row.dead
        if args.json:
            print(
                json.dumps(
                    [
                        {"shop_id": shop, "tills": t, "unacked": u, "dead": d}
                        for shop, (t, u, d) in sorted(shops.items())
                    ]
                )
            )
            return 0
        print(f"{'shop':<16}{'tills':>6}{'unacked':>9}{'dead':>6}")
        for shop, (tills, unacked, dead) in sorted(shops.items()):
            print(f"{shop:<16}{tills:>6}{unacked:>9}{dead:>6}")
        return 0

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        mode=args.mode,
        public_url=args.public_url,
        allowlist=args.allowlist,
        trusted_proxies=args.trusted_proxies,
        log_level=args.log_level,
    )

    async def check() -> None:
        async with opened_store(settings) as store:
            await open_box(store, settings.db, settings.env_key(), create=False)
            problem = await platform_url_problem(store, settings)
        if problem is not None:
            raise CliError(
                f"{problem}: set it with `smartduka-relay platform set --daraja-url https://...`"
            )

    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together: give both or neither")
    asyncio.run(check())
    from callback_relay.server import run_server

    run_server(
        settings,
        host=args.host,
        port=args.port,
        ready_file=args.ready_file,
        tls=(args.tls_cert, args.tls_key) if args.tls_cert and args.tls_key else None,
    )
    return 0


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="PATH", help="relay database (default: $SMARTDUKA_RELAY_DB or relay.db)"
    )


def _enrol_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the enrolment as JSON")
    parser.add_argument("--out", metavar="FILE", help="also write the enrolment JSON (mode 0600)")
    parser.add_argument(
        "--public-url", metavar="URL", help="relay URL to put in the enrolment for the till"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartduka-relay",
        description="SmartDuka callback relay: verified, durable Daraja callbacks for many shops.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the relay server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    serve.add_argument("--ready-file", metavar="FILE", help="write the bound port here when ready")
    serve.add_argument("--mode", choices=["sandbox", "production"], help="default: sandbox")
    serve.add_argument("--public-url", metavar="URL", help="the relay's public base URL")
    serve.add_argument("--allowlist", metavar="ADDRS", help="comma-separated callback sources")
    serve.add_argument(
        "--trusted-proxies", metavar="ADDRS", help="comma-separated proxies for X-Forwarded-For"
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate (PEM)")
    serve.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    _db_option(serve)
    serve.set_defaults(handler=cmd_serve)

    shop = commands.add_parser("shop", help="enrol shops and manage their callback secrets")
    shop_commands = shop.add_subparsers(dest="shop_command", metavar="ACTION", required=True)
    add = shop_commands.add_parser("add", help="enrol a shop with its first till")
    add.add_argument("name", help="the shop's name (for people)")
    _enrol_options(add)
    _db_option(add)
    add.set_defaults(handler=cmd_shop_add)
    rotate = shop_commands.add_parser("rotate-secret", help="add a new callback secret (kid)")
    rotate.add_argument("shop", help="shop id")
    rotate.add_argument("--json", action="store_true", help="print as JSON")
    _db_option(rotate)
    rotate.set_defaults(handler=cmd_shop_rotate)
    retire = shop_commands.add_parser("retire-kid", help="stop accepting a callback secret")
    retire.add_argument("shop", help="shop id")
    retire.add_argument("kid", help="the kid to retire, e.g. k1")
    _db_option(retire)
    retire.set_defaults(handler=cmd_shop_retire)

    till = commands.add_parser("till", help="enrol, rekey or revoke tills")
    till_commands = till.add_subparsers(dest="till_command", metavar="ACTION", required=True)
    till_add = till_commands.add_parser("add", help="enrol another till for a shop")
    till_add.add_argument("shop", help="shop id")
    _enrol_options(till_add)
    _db_option(till_add)
    till_add.set_defaults(handler=cmd_till_add)
    rekey = till_commands.add_parser(
        "rekey", help="give a till a new key and callback secret (the old ones are refused)"
    )
    rekey.add_argument("till", help="till id")
    _enrol_options(rekey)
    _db_option(rekey)
    rekey.set_defaults(handler=cmd_till_rekey)
    revoke = till_commands.add_parser("revoke", help="revoke a till's key")
    revoke.add_argument("till", help="till id")
    _db_option(revoke)
    revoke.set_defaults(handler=cmd_till_revoke)

    broker_cli.register(commands, shop_commands, add, _bind, _db_option)
    c2b_cli.register(commands, _bind, _db_option)

    replay = commands.add_parser("replay", help="re-deliver dead-lettered events")
    replay.add_argument("--till", metavar="TILL", help="only this till's events")
    _db_option(replay)
    replay.set_defaults(handler=cmd_replay)

    stats = commands.add_parser(
        "stats", help="unacknowledged and dead-lettered events per shop (tills with any)"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    _db_option(stats)
    stats.set_defaults(handler=cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (
        CliError,
        C2BSetupError,
        RegistryError,
        RelayKeyError,
        SealBrokenError,
        StoreUnavailable,
        StoreVersionError,
    ) as exc:
        print(f"smartduka-relay: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
