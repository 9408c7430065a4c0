"""`smartduka pay`: one M-Pesa payment from a script, start to final state.

Pushes through the payment engine, then waits for a final state: on the callback through the
relay while the relay is reachable (this till's feed is read meanwhile), else by asking M-Pesa
(STK query) every few seconds; and prints the outcome; `--json` prints the final payment as
JSON. Exit codes: 0 paid; 1 not paid (failed, expired, needs review, or unknown when the wait
ended); 2 bad input or refused (nothing sent); 3 the till is not set up.

Re-running the same command after a crash finds the attempt the first run wrote (same sale
reference, same idempotency key) and never sends a second prompt.

`--simulator URL` is a convenience for demos and tests: it points Daraja at the bundled
simulator and, when the data folder has no shop yet, registers one there (a fresh shortcode
and credentials, through the simulator's control API) and stores it and this till in the
vault, creating the data folder's keyring if it has none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_SET_UP, EXIT_OK

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.payments.api import PaymentView
    from smartduka_tui.till import Till

SIMULATOR_SHOP_ID = "simshop"
SIMULATOR_TILL_ID = "till1"
# Where callbacks go when no relay is configured: a closed loopback port. `pay` then does not
# need them (it asks M-Pesa), and Daraja requires some CallBackURL.
NO_RELAY_URL = "http://127.0.0.1:9"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pay",
        help="send one M-Pesa payment request and wait for its outcome",
        description="Send one M-Pesa STK push and wait for its final state.",
    )
    parser.add_argument(
        "--sale-ref",
        help="the sale number (letters and digits); left out, the till numbers the sale as "
        "the app does (MMDD and a counter, e.g. 0115007)",
    )
    parser.add_argument("--amount", required=True, help="whole Kenya shillings, 1 to 250,000")
    parser.add_argument("--phone", required=True, help="the customer's phone, e.g. 0712345678")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop waiting after S seconds (default: the attempt expiry plus a minute)",
    )
    add_simulator_option(parser)
    parser.set_defaults(handler=run)


def add_simulator_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--simulator",
        metavar="URL",
        help="use the Daraja simulator at URL (registers a demo shop there if none is set up)",
    )


def fail(message: str, code: int) -> int:
    print(f"smartduka: {message}", file=sys.stderr)
    return code


def load_settings_for(args: argparse.Namespace) -> Settings:
    """The till's settings; with --simulator, Daraja is the simulator at that URL."""
    from smartduka_tui.config import load_settings

    settings = load_settings(args.config)
    if getattr(args, "simulator", None):
        daraja = settings.daraja.model_copy(update={"base_url": args.simulator.rstrip("/")})
        settings = settings.model_copy(update={"daraja": daraja})
    return settings


def run_in_till(
    args: argparse.Namespace,
    work: Callable[[Till], Awaitable[int]],
    *,
    receipt_checks: bool = False,
    read_feed: bool = True,
) -> int:
    """Run `work(till)` on the till opened for one command (no background reconciler, no
    Daraja probe; with `read_feed=False` the relay's feed is not read either, see
    `open_till`). A configuration that does not load, or a till that cannot take payments,
    exits 3 saying how to fix it.

    With the command's `--simulator URL`, Daraja is the simulator there, a data folder with no
    keyring gets one and a folder with no shop gets the simulator's demo shop first.
    """
    from smartduka_tui.demo_shop import ensure_keyring, simulator_shop_if_none
    from smartduka_tui.till import open_till

    try:
        settings = load_settings_for(args)
    except (ValueError, FileNotFoundError) as error:
        return fail(f"configuration: {error}", EXIT_NOT_SET_UP)
    prepare = None
    if getattr(args, "simulator", None):
        ensure_keyring(settings.data_dir)
        prepare = partial(
            simulator_shop_if_none,
            settings=settings,
            url=args.simulator,
            shop_id=SIMULATOR_SHOP_ID,
            name="Simulator demo shop",
            prefix="SD",
            till_id=SIMULATOR_TILL_ID,
            relay_url=settings.relay.url or NO_RELAY_URL,
        )
    session = open_till(
        settings,
        run_reconciler=False,
        probe_daraja=False,
        receipt_checks=receipt_checks,
        read_feed=read_feed,
        no_relay_url=NO_RELAY_URL,
        prepare=prepare,
    )
    return asyncio.run(_in_till(session, work))


async def _in_till(
    session: AbstractAsyncContextManager[Till], work: Callable[[Till], Awaitable[int]]
) -> int:
    from smartduka_tui.store.errors import StoreError
    from smartduka_tui.till import TillNotReady

    async with AsyncExitStack() as stack:
        try:
            till = await stack.enter_async_context(session)
        except TillNotReady as error:
            return fail(error.message, EXIT_NOT_SET_UP)
        try:
            return await work(till)
        except StoreError as error:
            return fail(str(error), EXIT_NOT_SET_UP)


def run(args: argparse.Namespace) -> int:
    amount = parse_amount(args.amount)
    if amount is None:
        return fail("amount: must be a whole number of shillings, e.g. 150", EXIT_BAD_INPUT)
    return run_in_till(args, partial(_pay, args, amount))


async def _pay(args: argparse.Namespace, amount: int, till: Till) -> int:
    from smartduka_tui.payments.api import InvalidPaymentInput, PaymentRefused
    from smartduka_tui.relay_client import wait_for_outcome

    engine = till.engine
    try:
        sale_ref = args.sale_ref or await engine.next_sale_ref("cli")
    except RuntimeError as error:  # more than 9,999 sales today
        return fail(f"sale-ref: {error}", EXIT_BAD_INPUT)
    try:
        view = await engine.start_payment(sale_ref, amount, args.phone)
    except InvalidPaymentInput as error:
        return fail(str(error), EXIT_BAD_INPUT)
    except PaymentRefused as error:
        after = f" (try again in {error.retry_after} s)" if error.retry_after else ""
        return fail(f"{error.message}{after}", EXIT_BAD_INPUT)
    if view.is_paid:
        # The same sale asked again: its paid attempt comes back and nothing is sent.
        if not args.json:
            print(
                f"already paid: sale {view.sale_ref}, KES {view.amount:,} from "
                f"{view.phone_masked}; no prompt was sent"
            )
        print_view(view, as_json=args.json)
        return EXIT_OK
    if not args.json:
        print(f"sent: sale {view.sale_ref}, KES {view.amount:,} to {view.phone_masked}")
        sys.stdout.flush()
    timeout = args.timeout
    if timeout is None:
        timeout = till.settings.timings.attempt_expiry_s + 60
    view = await wait_for_outcome(engine, view.attempt_id, timeout, till.link)
    print_view(view, as_json=args.json)
    return EXIT_OK if view.is_paid else EXIT_FAILED


def parse_amount(text: str) -> int | None:
    cleaned = text.replace(",", "").strip()
    if not cleaned.isdigit() or len(cleaned) > 9:
        return None
    return int(cleaned)


def print_view(view: PaymentView, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(view.model_dump(mode="json"), indent=2, sort_keys=True))
        return
    print(f"state: {view.state.value} ({view.stage.value})")
    if view.receipt:
        print(f"receipt: {view.receipt}")
    if view.result_code is not None:
        print(f"result code: {view.result_code}")
    print(view.cashier_message)
    if view.is_live:
        print("Still open: `smartduka reconcile` (or the app) settles it when M-Pesa answers.")
