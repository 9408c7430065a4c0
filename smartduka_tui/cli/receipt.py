"""`smartduka receipt SALE`: a paid sale's receipt as text, or printed again marked COPY.

It reads the store without the data folder's lock, so it works beside a running app. With
`--print` it sends a COPY to the configured printer and records the reprint in the audit log
(the one write, which SQLite's WAL allows beside the app).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CliError, open_store, run

if TYPE_CHECKING:
    from smartduka_tui.config import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "receipt",
        help="show a paid sale's receipt, or print it again (marked COPY)",
        description="Show the receipt of a paid sale; --print sends a COPY to the printer.",
    )
    parser.add_argument("sale", metavar="SALE", help="the sale number, e.g. S1001")
    parser.add_argument("--shop", default=None, help="shop id (default: the configured shop)")
    parser.add_argument(
        "--print",
        dest="reprint",
        action="store_true",
        help="print it on the configured printer, marked COPY (audited)",
    )
    parser.set_defaults(handler=cmd_receipt)


def cmd_receipt(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.cli.common import shop_for
        from smartduka_tui.printing import PrinterError
        from smartduka_tui.receipts import ReceiptError, render_text
        from smartduka_tui.receipts.desk import ReceiptDesk
        from smartduka_tui.receipts.from_store import receipt_for_sale

        async with open_store(settings, require_keys=False, beside_the_app=True) as store:
            shop_id = await shop_for(store, settings, args.shop)
            try:
                receipt = await receipt_for_sale(store, shop_id, args.sale)
                if not args.reprint:
                    print(render_text(receipt), end="")
                    return EXIT_OK
                desk = ReceiptDesk(store, shop_id, receipt.till_id, settings.printer)
                copy = await desk.print(receipt.sale_ref, copy=True, via="cli")
            except ReceiptError as error:
                raise CliError(str(error), EXIT_BAD_INPUT) from None
            except PrinterError as error:
                raise CliError(str(error), EXIT_FAILED) from None
            print(render_text(copy), end="")
            print(f"Printed a copy of sale {receipt.sale_ref}'s receipt.")
        return EXIT_OK

    return run(args.config, work)
