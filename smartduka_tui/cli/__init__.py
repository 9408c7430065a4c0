"""The `smartduka` console script.

Each subcommand lives in its own module here with a `register(subparsers)` function that adds
its parser and sets `handler` (a function taking the parsed namespace and returning an exit
code). Modules keep their top-level imports light; heavy imports happen inside handlers so that
`smartduka --help` and the app start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "app",
    "demo",
    "pay",
    "verify",
    "reverse",
    "reconcile",
    "pull",
    "c2b",
    "shop",
    "enrol",
    "keys",
    "transactions",
    "receipt",
    "shift",
    "manager",
    "backup",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartduka",
        description="SmartDuka Till: M-Pesa checkout for the shop counter.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: $SMARTDUKA_CONFIG or ./smartduka.toml if present)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"smartduka_tui.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from smartduka_tui.cli.app import run_app

    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        # Plain `smartduka`, the cashier's command: the app without building every
        # subcommand's parser first (their modules' imports are a good part of a start).
        return run_app(argparse.Namespace(config=None))
    args = build_parser().parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:  # `smartduka --config FILE`: the app too
        return run_app(args)
    try:
        code = int(handler(args))
        # Flushed here, not at exit: a reader gone by then would raise outside this `try`.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return reader_went_away()


def reader_went_away() -> int:
    """Standard output's reader closed early (`smartduka transactions | head`): what it read
    was what it wanted, so stop quietly. Python flushes stdout again at exit, which would
    raise once more: point it at /dev/null first."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


if __name__ == "__main__":
    sys.exit(main())
