"""`smartduka keys generate|init|status|rotate`: the vault's encryption keys.

`generate` prints a new key (64 hex characters) for SMARTDUKA_ENCRYPTION_KEY or a keyring line.
`init` creates the keyring file (mode 0600) with one new key. `status` lists the kids and how
many secrets each seals. `rotate` adds a new key and re-seals every secret under it in batches;
killed half way, running it again finishes the job. It says when an old kid can be removed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import (
    EXIT_OK,
    keyring_file_for,
    open_store,
    require_manager_pin,
    run,
)

if TYPE_CHECKING:
    from smartduka_tui.config import Settings
    from smartduka_tui.store.rotation import KeyUsage


def cmd_generate(args: argparse.Namespace) -> int:
    from smartduka_tui.store.vault import generate_key_hex

    print(generate_key_hex())
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.store import acquire_data_dir_lock, create_keyring

        path = keyring_file_for(settings)
        with acquire_data_dir_lock(settings.data_dir):
            keyring = create_keyring(path)
        print(f"Keyring {path} created (mode 0600) with key {keyring.active_kid}.")
        print("Back it up apart from the database: without it the stored credentials are lost.")
        return EXIT_OK

    return run(args.config, work)


def _usage_lines(usage: KeyUsage) -> list[str]:
    lines = []
    for kid in usage.kids:
        role = "active" if kid == usage.active_kid else "old"
        keyed = ", keys the audit log or the PIN" if kid in usage.keying_log else ""
        lines.append(
            f"  {kid:<8} {role:<7} seals {usage.secrets_by_kid.get(kid, 0)} secret(s){keyed}"
        )
    return lines


def _usage_json(usage: KeyUsage) -> dict[str, Any]:
    return {
        "active_kid": usage.active_kid,
        "kids": list(usage.kids),
        "secrets_by_kid": {kid: usage.secrets_by_kid.get(kid, 0) for kid in usage.kids},
        "removable_kids": list(usage.removable),
        "keying_the_log": sorted(usage.keying_log),
    }


def cmd_status(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.store.rotation import key_usage

        async with open_store(settings) as store:
            usage = await key_usage(store)
            keyring = store.keyring
        if args.json:
            print(json.dumps(_usage_json(usage), indent=2))
            return EXIT_OK
        print(f"Keys from {keyring.source if keyring else 'nowhere'}:")
        print("\n".join(_usage_lines(usage)))
        if usage.pending:
            print(
                f"{usage.pending} secret(s) are not under the active key: run "
                "`smartduka keys rotate` to finish."
            )
        for kid in usage.removable:
            print(f"Kid {kid} seals nothing and can be removed from the keyring.")
        return EXIT_OK

    return run(args.config, work)


def cmd_rotate(args: argparse.Namespace) -> int:
    def progress(done: int, left: int) -> None:
        print(f"  re-sealed {done}, {left} left", file=sys.stderr, flush=True)

    async def work(settings: Settings) -> int:
        from smartduka_tui.store.rotation import rotate_keys

        async with open_store(settings) as store:
            await require_manager_pin(store, "rotate the encryption key")
            report = await rotate_keys(
                store, keyring_file_for(settings), batch_size=args.batch_size, progress=progress
            )
        usage = report.usage
        if args.json:
            print(
                json.dumps(
                    {
                        **_usage_json(usage),
                        "resumed": report.resumed,
                        "resealed": report.resealed,
                        "keyring": str(report.keyring_path),
                    },
                    indent=2,
                )
            )
            return EXIT_OK
        verb = "Finished the interrupted rotation to" if report.resumed else "Rotated to"
        print(
            f"{verb} key {usage.active_kid}: {report.resealed} secret(s) re-sealed; the "
            f"keyring is {report.keyring_path}."
        )
        print("\n".join(_usage_lines(usage)))
        for kid in usage.removable:
            print(
                f"Kid {kid} is no longer used by any secret: remove its line from "
                f"{report.keyring_path} once no backup you may restore still needs it."
            )
        for kid in sorted(usage.keying_log - {usage.active_kid}):
            print(
                f"Kid {kid} seals no secret now, but audit entries (or the manager PIN) are "
                "keyed with it: keep it in the keyring, or verify chain and the PIN fail."
            )
        return EXIT_OK

    return run(args.config, work)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="the encryption keys of the credential vault")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = actions.add_parser("generate", help="print a new random key (64 hex characters)")
    generate.set_defaults(handler=cmd_generate)
    init = actions.add_parser("init", help="create the keyring file with a new key")
    init.set_defaults(handler=cmd_init)
    status = actions.add_parser("status", help="which keys seal how many secrets")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=cmd_status)
    rotate = actions.add_parser(
        "rotate", help="add a new key and re-seal every secret under it (resumable)"
    )
    rotate.add_argument(
        "--batch-size",
        type=_positive,
        default=50,
        metavar="N",
        help="secrets re-sealed per transaction (default 50)",
    )
    rotate.add_argument("--json", action="store_true", help="print the result as JSON")
    rotate.set_defaults(handler=cmd_rotate)
