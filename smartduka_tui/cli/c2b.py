"""`smartduka c2b list|attach`: direct payments (customers paying the till or paybill) headless.

`list` shows this shop's direct payments, newest first (`--unattached` only those no sale holds,
`--json`); phones are as M-Pesa masked them. `attach TRANSID SALE_REF` claims one at the relay
for a sale (the first till to claim a payment wins, shop-wide) and records it with its audit
entry; a payment that is unknown, already attached or not granted is refused with words and
nothing changes.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_OK, CliError, open_store, run, shop_for

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.payments.c2b import C2BRecord


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "c2b", help="direct M-Pesa payments to the till: list them, attach one to a sale"
    )
    actions = parser.add_subparsers(dest="c2b_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="this shop's direct payments, newest first")
    listing.add_argument("--unattached", action="store_true", help="only those no sale holds")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--shop", help="the shop (when the till has several)")
    listing.set_defaults(handler=cmd_list)
    attach = actions.add_parser("attach", help="attach a direct payment to a sale")
    attach.add_argument("trans_id", metavar="TRANSID", help="the M-Pesa receipt, e.g. TKQ9ZZ1A2B")
    attach.add_argument("sale_ref", metavar="SALE_REF", help="the sale it pays")
    attach.add_argument("--shop", help="the shop (when the till has several)")
    attach.set_defaults(handler=cmd_attach)


def _as_json(record: C2BRecord) -> dict[str, Any]:
    return {
        "trans_id": record.trans_id,
        "amount": record.amount,
        "paid_at": record.paid_at.isoformat(),
        "payer": record.payer,
        "first_name": record.first_name,
        "bill_ref": record.bill_ref,
        "sale_ref": record.sale_ref,
        "till_id": record.attached_till,
    }


def _line(record: C2BRecord) -> str:
    from smartduka_tui.manager import kenya_time

    when = kenya_time(record.paid_at)
    where = f"sale {record.sale_ref} (till {record.attached_till})" if record.sale_ref else "-"
    return (
        f"{record.trans_id}  KES {record.amount:>7,}  {when}  {record.payer:<12}  "
        f"{record.first_name or '-':<10}  {where}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.manager import PaymentLists

        if args.limit < 1:
            raise CliError("--limit: must be 1 or more", EXIT_BAD_INPUT)
        async with open_store(settings, require_keys=False, beside_the_app=True) as store:
            shop_id = await shop_for(store, settings, args.shop)
            records = await PaymentLists(store, shop_id).direct_payments(
                unattached_only=args.unattached, limit=args.limit
            )
        if args.json:
            print(json.dumps([_as_json(r) for r in records], indent=2))
        elif not records:
            print("no direct payments")
        else:
            for record in records:
                print(_line(record))
        return EXIT_OK

    return run(args.config, work)


def cmd_attach(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.clock import SystemClock
        from smartduka_tui.manager import TillSetup
        from smartduka_tui.payments.c2b import C2BAttachError, C2BDesk
        from smartduka_tui.relay_client import c2b_claimer

        async with open_store(settings) as store:
            shop_id = await shop_for(store, settings, args.shop)
            till = await TillSetup(store, settings).enrolled_till(shop_id)
            relay_url = settings.relay_url_for(till.relay_url)
            if not relay_url:
                raise CliError("no relay is configured: a direct payment is claimed there")
            claim = c2b_claimer(relay_url, till.till_key.reveal())
            desk = C2BDesk(store, shop_id, till.till_id, SystemClock(), claim)
            try:
                record = await desk.attach(args.trans_id, args.sale_ref)
            except C2BAttachError as error:
                raise CliError(error.message, EXIT_BAD_INPUT) from None
        print(f"{record.trans_id} (KES {record.amount:,}) attached to sale {record.sale_ref}")
        return EXIT_OK

    return run(args.config, work)
