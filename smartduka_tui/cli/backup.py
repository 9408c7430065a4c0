"""`smartduka backup FILE` and `smartduka restore FILE`: the till database, without its keys.

`backup` uses SQLite's online backup API, so it runs beside a working till. `restore` needs
the till stopped (it takes the data folder's lock), `--yes`, and the keyring that opens the
backup's secrets; it checks the file first and keeps the database it replaces beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartduka_tui.cli.common import EXIT_BAD_INPUT, EXIT_OK, CliError, keyring_file_for, run
from smartduka_tui.model import AuditAction

if TYPE_CHECKING:
    from smartduka_tui.config import Settings


def cmd_backup(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.store import database_path
        from smartduka_tui.store.backup import backup_database

        target = Path(args.file)
        size = backup_database(database_path(settings.data_dir), target)
        print(
            f"Backed up the till database to {target} ({size:,} bytes). The encryption keys are "
            f"not in it: keep a copy of the keyring ({keyring_file_for(settings)}) or "
            "SMARTDUKA_ENCRYPTION_KEY apart from it, or the backup cannot be opened."
        )
        return EXIT_OK

    return run(args.config, work)


def cmd_restore(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        from smartduka_tui.model import Actor
        from smartduka_tui.store import database_path, load_keyring, open_till_store
        from smartduka_tui.store.backup import check_backup, check_backup_keys, restore_database
        from smartduka_tui.store.lock import acquire_data_dir_lock

        source = Path(args.file)
        check_backup(source)
        if not args.yes:
            raise CliError(
                f"this replaces the till database in {settings.data_dir} with {source} (the "
                "current one is kept as till.db.before-restore); run it again with --yes",
                EXIT_BAD_INPUT,
            )
        with acquire_data_dir_lock(settings.data_dir):
            keyring = load_keyring(keyring_file_for(settings))
            check_backup_keys(source, keyring)
            kept = restore_database(source, database_path(settings.data_dir))
        async with open_till_store(settings.data_dir, keyring_file=settings.keyring_file) as store:
            detail: dict[str, Any] = {"from": source.name, "kept": kept.name if kept else None}
            async with store.write() as tx:
                await store.audit.append(
                    tx, actor=Actor.MANAGER, action=AuditAction.STORE_RESTORED, detail=detail
                )
        print(
            f"Restored the till database from {source}."
            + (f" The one it replaced is kept as {kept}." if kept else "")
        )
        return EXIT_OK

    return run(args.config, work)


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup", help="copy the till database to FILE (online; the keys are not included)"
    )
    backup.add_argument("file", metavar="FILE", help="the new backup file (must not exist)")
    backup.set_defaults(handler=cmd_backup)
    restore = subparsers.add_parser(
        "restore", help="replace the till database with a backup made by `smartduka backup`"
    )
    restore.add_argument("file", metavar="FILE", help="the backup file")
    restore.add_argument("--yes", action="store_true", help="really replace the database")
    restore.set_defaults(handler=cmd_restore)
