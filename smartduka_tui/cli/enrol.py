"""`smartduka enrol FILE`: keep what `smartduka-relay shop add` / `till add` printed.

The file is the relay's enrolment JSON, read by the one loader the relay's writer shares
(`smartduka_tui.mpesa.enrolment`): a till's enrolment, or the rotated callback secret an older
`smartduka-relay shop rotate-secret` printed (its kid is added to this shop's tills). The till
key and callback secret go into the vault; nothing secret is printed. `-` reads standard input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
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
    from smartduka_tui.manager import EnrolmentRefused, TillView
    from smartduka_tui.mpesa.enrolment import Enrolment, RotatedSecret


def _read(path: str) -> bytes:
    from smartduka_tui.mpesa.enrolment import (
        MAX_ENROLMENT_BYTES,
        EnrolmentError,
        read_enrolment_file,
    )

    if path == "-":
        return sys.stdin.read(MAX_ENROLMENT_BYTES + 1).encode()
    try:
        return read_enrolment_file(path)
    except EnrolmentError as error:
        raise CliError(str(error), EXIT_BAD_INPUT) from None


def parse_enrolment(raw: bytes, source: str) -> Enrolment | RotatedSecret:
    """The enrolment in `raw` (the one loader, `mpesa.enrolment`), or a CliError that names
    what is wrong (never a value)."""
    from smartduka_tui.mpesa.enrolment import EnrolmentError, load_enrolment

    try:
        return load_enrolment(raw, source)
    except EnrolmentError as error:
        raise CliError(str(error), EXIT_BAD_INPUT) from None


def _missing_shop(shop_id: str, shop_name: str | None) -> CliError:
    name = shop_name or "SHOP NAME"
    return CliError(
        f"shop {shop_id} is not on this till yet. Add it first, for example "
        f'`smartduka shop add --id {shop_id} --name "{name}" --type platform --prefix DUKA` '
        "(or --type paybill/till with its credentials), then enrol again.",
        EXIT_BAD_INPUT,
    )


def _refused_words(error: EnrolmentRefused, source: str, shop_id: str) -> CliError:
    """The command's words for an enrolment the manager layer refused: what to pass or run."""
    from smartduka_tui.manager import EnrolmentProblem

    if error.problem is EnrolmentProblem.NO_RELAY_URL:
        message = f"{source} has no relay_url and none is configured: pass --relay-url URL"
    elif error.problem is EnrolmentProblem.INSECURE_RELAY_URL:
        message = "relay_url must be an https:// URL in production mode"
    else:
        message = (
            f"shop {shop_id} has no till enrolled here: enrol one first with the file "
            "from `smartduka-relay shop add` or `till add`"
        )
    return CliError(message, EXIT_BAD_INPUT)


def cmd_enrol(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import EnrolmentRefused, TillSetup

        source = "standard input" if args.file == "-" else args.file
        parsed = parse_enrolment(_read(args.file), source)
        async with open_store(settings) as store:
            setup = TillSetup(store, settings)
            if not await setup.has_shop(parsed.shop_id):
                raise _missing_shop(parsed.shop_id, parsed.shop_name)
            await require_manager_pin(store, "enrol a till")
            try:
                tills = await setup.enrol(
                    parsed, relay_url=args.relay_url, replace_secret=args.replace_secret
                )
            except EnrolmentRefused as error:
                raise _refused_words(error, source, parsed.shop_id) from None
        if args.json:
            print(json.dumps([_describe(parsed.shop_id, till) for till in tills], indent=2))
            return EXIT_OK
        for till in tills:
            print(
                f"Till {till.till_id} of shop {parsed.shop_id} enrolled with {till.relay_url} "
                f"(callback kid {till.active_callback_kid}; kids {', '.join(till.callback_kids)})."
            )
        if args.file != "-":
            print(f"{args.file} holds secrets in plain text: delete it now.")
        return EXIT_OK

    return run(args.config, work)


def _describe(shop_id: str, till: TillView) -> dict[str, Any]:
    return {"shop_id": shop_id, **asdict(till)}


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
