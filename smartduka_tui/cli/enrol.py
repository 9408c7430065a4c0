"""`smartduka enrol FILE`: keep what `smartduka-relay shop add` / `till add` printed.

The file is the relay's enrolment JSON (format `smartduka-enrolment/1`): shop_id, till_id,
till_key, callback_secret, callback_kid and relay_url (shop_name and format are read too;
other keys are ignored). The JSON of `smartduka-relay shop rotate-secret` (shop_id,
callback_kid, callback_secret) is accepted too: the new kid is added to this shop's tills. The
till key and callback secret go into the vault; nothing secret is printed. `-` reads standard
input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CliError,
    open_store,
    require_manager_pin,
    run,
)

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.store import Store, Till

ENROLMENT_FORMAT = "smartduka-enrolment/1"
_MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class EnrolmentFile:
    """The documented fields of the relay's enrolment JSON; anything else is ignored."""

    shop_id: str
    callback_secret: str
    callback_kid: str
    format: str | None = None
    shop_name: str | None = None
    till_id: str | None = None
    till_key: str | None = None
    relay_url: str | None = None


_REQUIRED = ("shop_id", "callback_secret", "callback_kid")
_OPTIONAL = ("format", "shop_name", "till_id", "till_key", "relay_url")


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.read(_MAX_FILE_BYTES + 1).encode()
    try:
        with Path(path).open("rb") as handle:
            return handle.read(_MAX_FILE_BYTES + 1)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}", EXIT_BAD_INPUT) from None


def parse_enrolment(raw: bytes, source: str) -> EnrolmentFile:
    """The enrolment in `raw`, or a CliError that names what is wrong (never a value)."""
    if len(raw) > _MAX_FILE_BYTES:
        raise CliError(f"{source} is larger than 64 KiB: not an enrolment file", EXIT_BAD_INPUT)
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CliError(
            f"{source} is not JSON: expected the relay's enrolment", EXIT_BAD_INPUT
        ) from None
    if not isinstance(data, dict):
        raise CliError(f"{source} must hold one JSON object", EXIT_BAD_INPUT)
    problems = [f"{name}: field required" for name in _REQUIRED if name not in data]
    problems += [
        f"{name}: must be text"
        for name in (*_REQUIRED, *_OPTIONAL)
        if name in data
        and not isinstance(data[name], str)
        and not (name in _OPTIONAL and data[name] is None)
    ]
    if problems:
        raise CliError(f"{source}: " + "; ".join(problems), EXIT_BAD_INPUT)
    parsed = EnrolmentFile(**{k: data[k] for k in (*_REQUIRED, *_OPTIONAL) if k in data})
    if parsed.format is not None and parsed.format != ENROLMENT_FORMAT:
        raise CliError(
            f"{source} is in format {parsed.format!r}; this SmartDuka reads {ENROLMENT_FORMAT}",
            EXIT_BAD_INPUT,
        )
    if (parsed.till_id is None) != (parsed.till_key is None):
        missing = "till_key" if parsed.till_key is None else "till_id"
        raise CliError(f"{source}: {missing}: field required", EXIT_BAD_INPUT)
    return parsed


def _missing_shop(shop_id: str, shop_name: str | None) -> CliError:
    name = shop_name or "SHOP NAME"
    return CliError(
        f"shop {shop_id} is not on this till yet. Add it first, for example "
        f'`smartduka shop add --id {shop_id} --name "{name}" --type platform --prefix DUKA` '
        "(or --type paybill/till with its credentials), then enrol again.",
        EXIT_BAD_INPUT,
    )


async def _enrol_till(
    store: Store, settings: Settings, parsed: EnrolmentFile, args: argparse.Namespace
) -> list[Till]:
    from smartduka_tui.model import Mode
    from smartduka_tui.store import Enrolment, Secret

    source = "standard input" if args.file == "-" else args.file
    relay_url = args.relay_url or parsed.relay_url or settings.relay.url
    if not relay_url:
        raise CliError(
            f"{source} has no relay_url and none is configured: pass --relay-url URL",
            EXIT_BAD_INPUT,
        )
    if settings.mode is Mode.PRODUCTION and not relay_url.startswith("https://"):
        raise CliError("relay_url must be an https:// URL in production mode", EXIT_BAD_INPUT)
    if parsed.till_id is None or parsed.till_key is None:
        raise CliError(f"{source}: till_id and till_key: field required", EXIT_BAD_INPUT)
    enrolment = Enrolment(
        shop_id=parsed.shop_id,
        till_id=parsed.till_id,
        relay_url=relay_url,
        till_key=Secret(parsed.till_key),
        callback_kid=parsed.callback_kid,
        callback_secret=Secret(parsed.callback_secret),
    )
    async with store.write() as tx:
        return [await store.tills.enrol(tx, enrolment, replace_secret=args.replace_secret)]


async def _add_rotated_secret(
    store: Store, parsed: EnrolmentFile, args: argparse.Namespace
) -> list[Till]:
    from smartduka_tui.store import Secret

    tills = await store.tills.for_shop(parsed.shop_id)
    if not tills:
        raise CliError(
            f"shop {parsed.shop_id} has no till enrolled here: enrol one first with the file "
            "from `smartduka-relay shop add` or `till add`",
            EXIT_BAD_INPUT,
        )
    secret = Secret(parsed.callback_secret)
    async with store.write() as tx:
        return [
            await store.tills.add_callback_secret(
                tx,
                parsed.shop_id,
                till.id,
                parsed.callback_kid,
                secret,
                replace_secret=args.replace_secret,
            )
            for till in tills
        ]


def cmd_enrol(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        source = "standard input" if args.file == "-" else args.file
        parsed = parse_enrolment(_read(args.file), source)
        async with open_store(settings) as store:
            if await store.shops.get(parsed.shop_id) is None:
                raise _missing_shop(parsed.shop_id, parsed.shop_name)
            await require_manager_pin(store, "enrol a till")
            if parsed.till_id is None:
                tills = await _add_rotated_secret(store, parsed, args)
            else:
                tills = await _enrol_till(store, settings, parsed, args)
        if args.json:
            print(json.dumps([_describe(till) for till in tills], indent=2))
            return EXIT_OK
        for till in tills:
            print(
                f"Till {till.id} of shop {till.shop_id} enrolled with {till.relay_url} "
                f"(callback kid {till.active_callback_kid}; kids {', '.join(till.callback_kids)})."
            )
        if args.file != "-":
            print(f"{args.file} holds secrets in plain text: delete it now.")
        return EXIT_OK

    return run(args.config, work)


def _describe(till: Till) -> dict[str, Any]:
    return {
        "shop_id": till.shop_id,
        "till_id": till.id,
        "relay_url": till.relay_url,
        "active_callback_kid": till.active_callback_kid,
        "callback_kids": list(till.callback_kids),
    }


def register(subparsers: Any) -> None:
    enrol = subparsers.add_parser(
        "enrol", help="store a till enrolment printed by `smartduka-relay shop add`/`till add`"
    )
    enrol.add_argument("file", metavar="FILE", help="the enrolment JSON ('-': standard input)")
    enrol.add_argument(
        "--relay-url",
        metavar="URL",
        help="relay base URL, if the enrolment has none (or to override it)",
    )
    enrol.add_argument(
        "--replace-secret",
        action="store_true",
        help="replace a callback secret already stored under the same kid",
    )
    enrol.add_argument("--json", action="store_true", help="print the result as JSON")
    enrol.set_defaults(handler=cmd_enrol)
