"""`smartduka-sim`: run the Daraja simulator, and script a running one headlessly.

`serve` runs it (also `python -m smartduka_tui.simulator serve`); the other subcommands talk to a
running simulator's control API at `--url` (default $SMARTDUKA_SIM_URL or
http://127.0.0.1:8089). Heavy imports happen inside handlers so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from smartduka_tui.simulator.codes import magic_help

DEFAULT_URL = "http://127.0.0.1:8089"
DEFAULT_PORT = 8089

_EPILOG = f"""\
magic phone numbers (a scripted scenario for a phone overrides these):
{magic_help()}

Daraja endpoints: GET /oauth/v1/generate?grant_type=client_credentials,
POST /mpesa/stkpush/v1/processrequest, POST /mpesa/stkpushquery/v1/query,
POST /mpesa/c2b/v2/registerurl, POST /mpesa/qrcode/v1/generate,
POST /mpesa/transactionstatus/v1/query, POST /mpesa/reversal/v1/request,
POST /pulltransactions/v1/register, POST /pulltransactions/v1/query.
Pre-registered: shortcode 174379 with Safaricom's public sandbox passkey, usable by any app,
and the demo app (consumer key "sim-demo-consumer-key", secret "sim-demo-consumer-secret").

Control API (JSON, unauthenticated: bind to loopback only):
  GET  /__sim/health | /__sim/clock         POST /__sim/clock/advance {{"seconds": S}}
  GET|PATCH|DELETE /__sim/settings          GET|PUT /__sim/apps
  GET|POST /__sim/shortcodes                GET|PUT|DELETE /__sim/shortcodes/CODE
  POST /__sim/shortcodes/CODE/reset         GET|PUT|DELETE /__sim/phones/PHONE/scenario
  GET  /__sim/magic                         POST /__sim/transactions/ID/resolve
  GET  /__sim/requests | /__sim/callbacks | /__sim/transactions
       (filters: phone, shortcode, checkout_request_id, since, limit)
  GET  /__sim/certificate                   PUT /__sim/shortcodes/CODE/initiators
  GET|PUT /__sim/shortcodes/CODE/async-results
  GET|POST /__sim/shortcodes/CODE/c2b/payments   GET /__sim/notices (shortcode, kind)
"""


def _result_code(text: str) -> int | str:
    """Digits are an integer ResultCode; anything else (SFC_IC0003) stays a string."""
    return int(text) if text.isascii() and text.isdigit() else text


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("SMARTDUKA_SIM_URL", DEFAULT_URL),
        help="the running simulator (default: $SMARTDUKA_SIM_URL or %(default)s)",
    )


def _add_filters(parser: argparse.ArgumentParser, *, paged: bool = True) -> None:
    _add_url(parser)
    parser.add_argument("--phone", help="only this phone (2547XXXXXXXX)")
    parser.add_argument("--shortcode", help="only this shortcode")
    parser.add_argument("--checkout", metavar="ID", help="only this CheckoutRequestID")
    if paged:
        parser.add_argument("--since", type=int, help="only entries after this seq")
    parser.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartduka-sim",
        description="A Daraja (M-Pesa STK push) simulator with a control API for tests and demos.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the simulator",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve.add_argument("--ready-file", metavar="PATH", help="write the bound port here when ready")
    serve.add_argument("--callback-delay", type=float, metavar="S", help="push to answer (1.5)")
    serve.add_argument("--prompt-timeout", type=float, metavar="S", help="unanswered -> 1037 (90)")
    serve.add_argument("--token-lifetime", type=int, metavar="S", help="OAuth token life (3600)")
    serve.add_argument("--expires-in", choices=["string", "number"], help="expires_in type")
    serve.add_argument("--revoke-old-token", action="store_true", help="new token revokes old")
    serve.add_argument("--spike-arrest", type=int, metavar="N", help="requests/s per shortcode")
    serve.add_argument("--quota", type=int, metavar="N", help="requests per quota window")
    serve.add_argument("--quota-window", type=float, metavar="S", help="quota window (3600)")
    serve.add_argument("--rule-17-window", type=float, metavar="S", help="code 17 window (120)")
    serve.add_argument(
        "--unknown-checkout",
        choices=["invalid", "being_processed", "does_not_exist"],
        help="answer for an unknown CheckoutRequestID (invalid)",
    )
    serve.add_argument("--balance", choices=["no_value", "omit"], help="Balance item (no_value)")
    serve.add_argument(
        "--amount-style", choices=["two_decimals", "one_decimal", "integer"], help="Amount text"
    )
    serve.add_argument("--max-timestamp-skew", type=int, metavar="S", help="off by default")
    serve.add_argument("--no-sandbox", action="store_true", help="skip 174379 and the demo app")
    serve.add_argument("--log-level", default="warning", help="uvicorn log level")
    serve.set_defaults(handler=_serve)

    scenario = sub.add_parser("scenario", help="script what a phone does with pushes")
    _add_url(scenario)
    scenario.add_argument("phone", help="2547XXXXXXXX or 2541XXXXXXXX")
    scenario.add_argument("--show", action="store_true", help="print the phone's scenario")
    scenario.add_argument("--clear", action="store_true", help="back to the default or magic one")
    scenario.add_argument("--result", type=_result_code, metavar="CODE", help="e.g. 1032")
    scenario.add_argument("--desc", metavar="TEXT", help="ResultDesc to send")
    scenario.add_argument("--unanswered", action="store_true", help="expire with 1037")
    scenario.add_argument("--delay", type=float, metavar="S", help="callback delay")
    scenario.add_argument("--drop", action="store_true", help="never send the callback")
    scenario.add_argument("--duplicates", type=int, metavar="N", help="extra callback copies")
    scenario.add_argument("--duplicate-interval", type=float, metavar="S")
    scenario.add_argument("--late", type=float, metavar="S", help="callback S after resolution")
    scenario.add_argument("--before-response", action="store_true", help="callback first")
    scenario.add_argument("--push-anomaly", choices=["none", "hold", "gateway_error"])
    scenario.add_argument("--push-hold", type=float, metavar="S", help="hold time (60)")
    scenario.add_argument(
        "--query-anomaly",
        choices=["none", "stuck_pending", "gateway_error", "spike_arrest", "quota"],
    )
    scenario.add_argument("--query-anomaly-times", type=int, metavar="N")
    scenario.add_argument("--query-result", type=_result_code, metavar="CODE")
    scenario.set_defaults(handler=_scenario)

    advance = sub.add_parser("advance", help="move simulator time forward")
    _add_url(advance)
    advance.add_argument("seconds", type=float)
    advance.set_defaults(handler=_advance)

    log = sub.add_parser("log", help="Daraja requests received, secrets redacted")
    _add_filters(log)
    log.set_defaults(handler=_log)

    callbacks = sub.add_parser("callbacks", help="callback deliveries and their outcome")
    _add_filters(callbacks)
    callbacks.set_defaults(handler=_callbacks)

    transactions = sub.add_parser("transactions", help="accepted pushes (ground truth)")
    _add_filters(transactions, paged=False)
    transactions.set_defaults(handler=_transactions)

    resolve = sub.add_parser("resolve", help="answer a pending prompt now")
    _add_url(resolve)
    resolve.add_argument("checkout_request_id")
    resolve.add_argument("--result", type=_result_code, default=0, metavar="CODE")
    resolve.set_defaults(handler=_resolve)

    pay_till = sub.add_parser(
        "pay-till", help="a phone pays a shortcode directly (C2B): the confirmation follows"
    )
    _add_url(pay_till)
    pay_till.add_argument("shortcode")
    pay_till.add_argument("phone")
    pay_till.add_argument("amount", help='shillings, e.g. 150 or "150.50"')
    pay_till.add_argument("--name", default="JOHN", help="the payer's first name")
    pay_till.add_argument("--bill-ref", default="", help="the paybill account number")
    pay_till.set_defaults(handler=_pay_till)

    notices = sub.add_parser(
        "notices", help="C2B confirmations, results and timeouts sent, and their outcome"
    )
    _add_url(notices)
    notices.add_argument("--shortcode")
    notices.add_argument("--json", action="store_true")
    notices.set_defaults(handler=_notices)

    register = sub.add_parser("register", help="register a shortcode and its app")
    _add_url(register)
    register.add_argument("--shortcode", help="omit to have one picked")
    register.add_argument("--passkey", required=True)
    register.add_argument("--consumer-key", required=True)
    register.add_argument("--consumer-secret", required=True)
    register.add_argument("--kind", choices=["paybill", "till"], default="paybill")
    register.add_argument("--till", action="append", default=[], metavar="NUMBER")
    register.set_defaults(handler=_register)

    settings = sub.add_parser("settings", help="show or change global settings")
    _add_url(settings)
    settings.add_argument("changes", nargs="*", metavar="NAME=VALUE", help="JSON values")
    settings.add_argument("--reset", action="store_true", help="back to the startup settings")
    settings.set_defaults(handler=_settings)

    magic = sub.add_parser("magic", help="list the magic phone numbers")
    magic.set_defaults(handler=_magic)
    return parser


def _magic(args: argparse.Namespace) -> int:
    print(magic_help())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from smartduka_tui.serving import serve
    from smartduka_tui.simulator.app import create_app
    from smartduka_tui.simulator.engine import SimulatorConfig
    from smartduka_tui.simulator.schemas import SimSettings, explain_validation_error

    chosen = {
        "callback_delay_s": args.callback_delay,
        "prompt_timeout_s": args.prompt_timeout,
        "token_lifetime_s": args.token_lifetime,
        "expires_in_type": args.expires_in,
        "revoke_old_token": True if args.revoke_old_token else None,
        "spike_arrest_per_s": args.spike_arrest,
        "quota_limit": args.quota,
        "quota_window_s": args.quota_window,
        "rule_17_window_s": args.rule_17_window,
        "unknown_checkout_answer": args.unknown_checkout,
        "balance_item": args.balance,
        "amount_style": args.amount_style,
        "max_timestamp_skew_s": args.max_timestamp_skew,
    }
    try:
        settings = SimSettings.model_validate({k: v for k, v in chosen.items() if v is not None})
    except ValidationError as exc:
        print(f"smartduka-sim: {explain_validation_error(exc)[0]}", file=sys.stderr)
        return 2
    config = SimulatorConfig(settings=settings, preregister_sandbox=not args.no_sandbox)
    serve(
        create_app(config),
        host=args.host,
        port=args.port,
        ready_file=args.ready_file,
        log_level=args.log_level,
    )
    return 0


def _run_control(args: argparse.Namespace, action: Callable[[Any], Awaitable[int]]) -> int:
    """Run one control call, turning refusals and unreachable servers into plain messages."""
    import httpx

    from smartduka_tui.simulator.control import SimulatorControl, SimulatorControlError

    async def run() -> int:
        async with SimulatorControl(args.url) as sim:
            return await action(sim)

    try:
        return asyncio.run(run())
    except SimulatorControlError as exc:
        print(f"smartduka-sim: {exc.message}", file=sys.stderr)
        return 2
    except httpx.TransportError:
        print(
            f"smartduka-sim: cannot reach the simulator at {args.url} "
            "(is `smartduka-sim serve` running?)",
            file=sys.stderr,
        )
        return 1


def _print_json(items: Any) -> None:
    print(json.dumps(items, indent=2, ensure_ascii=False))


def _scenario(args: argparse.Namespace) -> int:
    fields = {
        "result_code": args.result,
        "result_desc": args.desc,
        "unanswered": args.unanswered or None,
        "callback_delay_s": args.delay,
        "drop_callback": args.drop or None,
        "duplicates": args.duplicates,
        "duplicate_interval_s": args.duplicate_interval,
        "late_callback_s": args.late,
        "callback_before_response": args.before_response or None,
        "push_anomaly": args.push_anomaly,
        "push_hold_s": args.push_hold,
        "query_anomaly": args.query_anomaly,
        "query_anomaly_times": args.query_anomaly_times,
        "query_result_code": args.query_result,
    }
    chosen = {k: v for k, v in fields.items() if v is not None}

    async def action(sim: Any) -> int:
        from pydantic import ValidationError

        from smartduka_tui.simulator.schemas import explain_validation_error

        if args.clear:
            await sim.clear_phone_scenario(args.phone)
        elif chosen or not args.show:
            try:
                await sim.set_phone_scenario(args.phone, **chosen)
            except ValidationError as exc:
                print(f"smartduka-sim: {explain_validation_error(exc)[0]}", file=sys.stderr)
                return 2
        scenario, source = await sim.phone_scenario(args.phone)
        _print_json({"phone": args.phone, "source": source, **scenario.model_dump(mode="json")})
        return 0

    return _run_control(args, action)


def _advance(args: argparse.Namespace) -> int:
    async def action(sim: Any) -> int:
        result = await sim.advance_clock(args.seconds)
        print(
            f"simulator time {result.now.isoformat()} (Kenya {result.kenya_time}), "
            f"offset {result.offset_s:g} s, {result.callbacks_delivered} callback(s) delivered"
        )
        return 0

    return _run_control(args, action)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    found = {"phone": args.phone, "shortcode": args.shortcode, "checkout_request_id": args.checkout}
    if getattr(args, "since", None) is not None:
        found["since"] = args.since
    return found


def _listing(
    args: argparse.Namespace, fetch: Callable[[Any], Awaitable[list[Any]]], line: Callable[..., str]
) -> int:
    """Print what `fetch` lists: as JSON with --json, else one `line` an item."""

    async def action(sim: Any) -> int:
        found = await fetch(sim)
        if args.json:
            _print_json([item.model_dump(mode="json") for item in found])
        else:
            for item in found:
                print(line(item))
        return 0

    return _run_control(args, action)


def _request_line(e: Any) -> str:
    correlation = {"phone": e.phone, "shortcode": e.shortcode, "checkout": e.checkout_request_id}
    return (
        f"{e.seq:>6} {e.received_at:%H:%M:%S} {e.method:<6} {e.path} -> "
        f"{e.status if e.status is not None else '...'} {e.error_code or ''}".rstrip()
        + "".join(f" {name}={value}" for name, value in correlation.items() if value)
    )


def _callback_line(d: Any) -> str:
    outcome = f"HTTP {d.status}" if d.status is not None else f"failed: {d.error}"
    return (
        f"{d.seq:>6} {d.attempted_at:%H:%M:%S} {d.checkout_request_id} "
        f"copy {d.copy_number} ResultCode {d.result_code} -> {d.url}: {outcome}"
    )


def _transaction_line(t: Any) -> str:
    result = "" if t.result_code is None else f" ResultCode {t.result_code}"
    receipt = f" receipt {t.receipt}" if t.receipt else ""
    return (
        f"{t.checkout_request_id} {t.shortcode} {t.phone} KES {t.amount} "
        f"{t.state.value}{result}{receipt}"
    )


def _log(args: argparse.Namespace) -> int:
    return _listing(args, lambda sim: sim.requests(**_filters(args)), _request_line)


def _callbacks(args: argparse.Namespace) -> int:
    return _listing(args, lambda sim: sim.callbacks(**_filters(args)), _callback_line)


def _transactions(args: argparse.Namespace) -> int:
    return _listing(args, lambda sim: sim.transactions(**_filters(args)), _transaction_line)


def _resolve(args: argparse.Namespace) -> int:
    async def action(sim: Any) -> int:
        view = await sim.resolve(args.checkout_request_id, args.result)
        print(f"{view.checkout_request_id} resolved with ResultCode {view.result_code}")
        return 0

    return _run_control(args, action)


def _pay_till(args: argparse.Namespace) -> int:
    async def action(sim: Any) -> int:
        paid = await sim.pay_till(
            args.shortcode,
            args.phone,
            args.amount,
            first_name=args.name,
            bill_ref_number=args.bill_ref,
        )
        where = "confirmation follows" if paid.confirmation_registered else "no URL registered"
        print(f"{paid.trans_id} KES {paid.amount} from {paid.masked_msisdn} ({where})")
        return 0

    return _run_control(args, action)


def _notice_line(n: Any) -> str:
    outcome = n.status if n.status is not None else n.error
    return f"{n.seq:>6} {n.kind.value:<26} {n.shortcode} {n.reference} -> {outcome}"


def _notices(args: argparse.Namespace) -> int:
    return _listing(args, lambda sim: sim.notices(shortcode=args.shortcode), _notice_line)


def _register(args: argparse.Namespace) -> int:
    from smartduka_tui.simulator.schemas import ShortcodeKind

    async def action(sim: Any) -> int:
        view = await sim.register_shortcode(
            args.shortcode,
            passkey=args.passkey,
            consumer_key=args.consumer_key,
            consumer_secret=args.consumer_secret,
            kind=ShortcodeKind(args.kind),
            till_numbers=args.till,
        )
        _print_json(view.model_dump(mode="json"))
        return 0

    return _run_control(args, action)


def _settings(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for change in args.changes:
        name, equals, value = change.partition("=")
        if not equals or not name:
            print(f"smartduka-sim: expected NAME=VALUE, got {change!r}", file=sys.stderr)
            return 2
        try:
            changes[name] = json.loads(value)
        except ValueError:
            changes[name] = value

    async def action(sim: Any) -> int:
        if args.reset:
            settings = await sim.reset_settings()
        elif changes:
            settings = await sim.update_settings(**changes)
        else:
            settings = await sim.settings()
        _print_json(settings.model_dump(mode="json"))
        return 0

    return _run_control(args, action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
