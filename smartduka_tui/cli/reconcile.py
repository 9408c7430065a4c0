"""`smartduka reconcile`: one reconciler pass, headless (for cron or after an outage).

Queries M-Pesa about this till's open payments (those pending longer than the configured
minimum age, and unknown ones it can ask about), expires those past the attempt expiry after
one last query, and prints what it did (`--json` for a script). Exit code 0 when the pass ran,
3 when the till is not set up.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.pay import add_simulator_option, run_in_till

if TYPE_CHECKING:
    from smartduka_tui.till import Till


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reconcile",
        help="run one reconciliation pass over open M-Pesa payments",
        description="Ask M-Pesa about open payments once, and expire the ones past expiry.",
    )
    parser.add_argument("--json", action="store_true", help="print the pass's figures as JSON")
    add_simulator_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_in_till(args, partial(_reconcile, args), read_feed=False)


async def _reconcile(args: argparse.Namespace, till: Till) -> int:
    report = await till.engine.reconcile_once()
    still_open = await till.engine.awaiting_count()
    figures = {**report.model_dump(), "open_after": still_open}
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        print(
            f"examined {report.examined}, queried {report.queried}, settled {report.settled}, "
            f"expired {report.expired}, still open {still_open}, errors {report.errors}"
        )
    return 0
