"""What the `smartduka` subcommands share: settings, the store, secrets, errors, the PIN hook.

This module is the commands' one seam to the store: it opens the data folder and turns the
store's errors into exit codes. The commands hand the opened store to the services (the manager
layer, smartduka_tui.manager, or the engine's) rather than read or write it themselves; only
the storage commands (backup, keys) work on it directly.

A command's handler calls `run(config_file, work)`: `work(settings)` is a coroutine returning
an exit code; any StoreError or CliError becomes one line on stderr (no traceback) and an exit
code: 2 for bad input, 3 for a till not set up yet, 1 for anything else that stopped it.
Imports of the store and settings happen inside the functions, so `smartduka --help` stays
fast.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import importlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.store import Secret

    # What `open_store` opens, named for the commands that hand it on to the manager layer's
    # services (smartduka_tui.manager) or the engine rather than call it themselves.
    from smartduka_tui.store import Store as Store

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_SET_UP = 3
"""The till has no shop or till enrolled yet (as `smartduka pay` says it)."""


class CliError(Exception):
    """A command that cannot go on; the message is shown as it is."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def load_modules(names: Iterable[str]) -> None:
    """Import a long-running command's modules up front, with the garbage collector paused.

    Importing allocates many objects that live for the whole run, and the collector would scan
    them again and again while they load (about a tenth of the import time, measured on a
    2-core machine). Once loaded they are frozen out of later collections, which a till
    running all day also gains from; collection is back on when this returns.
    """
    with collector_paused():
        for name in names:
            importlib.import_module(name)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The garbage collector off while long-lived objects are made (`load_modules`' imports,
    the app's first screen); what was made is then frozen out of later collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def add_secret_flag(parser: argparse.ArgumentParser, flag: str, dest: str, what: str) -> None:
    """A credential's flag: bare or `-`, it is read from standard input, never from argv."""
    parser.add_argument(
        flag,
        dest=dest,
        nargs="?",
        const="-",
        metavar="-",
        help=f"read the {what} from standard input (a terminal prompts without echo); never "
        "give its value here",
    )


def secret_in_argv(flag: str, env: str, instead: str) -> CliError:
    """The refusal of a credential given as a command-line value (it never repeats it)."""
    return CliError(
        f"{flag} takes no value on the command line: other users can read command "
        f"lines (ps, /proc) and the shell keeps them in its history. Give `{flag} -` "
        f"and type it at the prompt (or send one line on standard input), or set {env} "
        f"{instead}",
        EXIT_BAD_INPUT,
    )


@contextmanager
def flag_names(flag_for: Mapping[str, str]) -> Iterator[None]:
    """Say `--shortcode: ...` rather than `business_shortcode: ...` for a refused field."""
    from smartduka_tui.manager import ManagerInputError

    try:
        yield
    except ManagerInputError as error:
        flag = flag_for.get(error.field, error.field)
        raise CliError(f"{flag}: {error.message}. Nothing was saved.", EXIT_BAD_INPUT) from None


def needs_action(parser: argparse.ArgumentParser) -> None:
    """A command run without its ACTION prints its help and exits 2."""

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return EXIT_BAD_INPUT

    parser.set_defaults(handler=usage)


def print_error(message: str) -> None:
    print(f"smartduka: error: {message}", file=sys.stderr)


def settings_for(config_file: str | None) -> Settings:
    """The till's settings; a missing file or a bad value becomes a CliError."""
    from pydantic import ValidationError

    from smartduka_tui.config import load_settings

    try:
        return load_settings(config_file)
    except FileNotFoundError as error:
        raise CliError(str(error), EXIT_BAD_INPUT) from None
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise CliError(f"setting {where}: {first['msg']}", EXIT_BAD_INPUT) from None


def keyring_file_for(settings: Settings) -> Path:
    from smartduka_tui.store import keyring_path

    return keyring_path(settings.data_dir, settings.keyring_file)


@asynccontextmanager
async def open_store(
    settings: Settings, *, require_keys: bool = True, beside_the_app: bool = False
) -> AsyncIterator[Store]:
    """The store of the configured data folder, holding its lock while open.

    `beside_the_app` opens it without the lock, for commands that only read (and at most
    audit a PIN try): the lock keeps one engine per folder, and SQLite's WAL lets them read
    while the open app writes.
    """
    from smartduka_tui.store import open_till_store

    async with open_till_store(
        settings.data_dir,
        keyring_file=settings.keyring_file,
        require_keys=require_keys,
        take_lock=not beside_the_app,
    ) as store:
        yield store


def run(config_file: str | None, work: Callable[[Settings], Awaitable[int]]) -> int:
    """Run a command and turn every expected failure into a message and an exit code."""
    return run_guarded(lambda: work(settings_for(config_file)))


def run_guarded(main: Callable[[], Awaitable[int]]) -> int:
    """Run `main()` on a new event loop; every expected failure becomes a message and an
    exit code (the settings too may be read inside, after the app has painted)."""
    from smartduka_tui.store import InputError, StoreError

    try:
        return asyncio.run(_main(main))
    except CliError as error:
        print_error(error.message)
        return error.exit_code
    except InputError as error:
        print_error(str(error))
        return EXIT_BAD_INPUT
    except StoreError as error:
        print_error(str(error))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error("interrupted; what was saved before stays saved")
        return 130


async def _main(main: Callable[[], Awaitable[int]]) -> int:
    return await main()


async def shop_for(store: Store, settings: Settings, chosen: str | None) -> str:
    """The shop a command is for: `--shop`, else the configured one, else the till's only
    shop; CliError when there is no such shop, or there are several and none was named."""
    from smartduka_tui.manager import TillSetup

    setup = TillSetup(store, settings)
    shop_id = chosen or settings.shop_id
    if shop_id:
        if not await setup.has_shop(shop_id):
            raise CliError(f"there is no shop {shop_id!r} on this till", EXIT_BAD_INPUT)
        return shop_id
    shops = await setup.shop_ids()
    if len(shops) != 1:
        raise CliError(
            "name the shop with --shop ID (or set shop_id in the settings): this till has "
            f"{len(shops)} shops",
            EXIT_BAD_INPUT,
        )
    return shops[0]


async def require_manager_pin(store: Store, action: str) -> None:
    """The gate in front of every command that reveals or changes secrets or resolves payments.

    It passes while no manager PIN is set (`smartduka manager set-pin` sets one); otherwise it
    asks for the PIN (terminal prompt, a line of standard input, or SMARTDUKA_MANAGER_PIN) and
    raises CliError unless it is right. Every try is audited; too many wrong ones lock the PIN
    for a while, and while it is locked nobody is asked. Callers call it before they reveal or
    change anything.
    """
    from smartduka_tui.cli.manager import read_pin, refusal
    from smartduka_tui.manager import PinDesk

    check = await PinDesk(store).gate(
        lambda: read_pin("Manager PIN", from_env=True), purpose=f"smartduka {action}"
    )
    if check is not None and not check.accepted:
        raise refusal(check)


def read_secret(label: str, flag_value: str | None, env_name: str | None) -> Secret | None:
    """A secret given as a flag value, as `-` (one line of standard input each, or a prompt
    without echo on a terminal), or from an environment variable; None when not given at all."""
    if flag_value == "-":
        value = typed(label, f"expected the {label} on standard input (one line for each `-`)")
    elif flag_value is not None:
        value = flag_value
    elif env_name is not None and env_name in os.environ:
        value = os.environ[env_name]
    else:
        return None
    return non_empty(value, label)


def typed(prompt: str, missing: str) -> str:
    """What is typed at a terminal prompt without echo, else one line of standard input;
    CliError(`missing`) when standard input has ended."""
    if sys.stdin.isatty():
        return getpass.getpass(f"{prompt}: ")
    line = sys.stdin.readline()
    if not line:
        raise CliError(missing, EXIT_BAD_INPUT)
    return line.rstrip("\r\n")


def non_empty(value: str, label: str) -> Secret:
    from smartduka_tui.store import Secret

    value = value.strip()
    if not value:
        raise CliError(f"the {label} given is empty", EXIT_BAD_INPUT)
    return Secret(value)
