"""Fail-safe storage from the command line: `smartduka backup` and `restore` (round trip, keys
never in the file, a wrong keyring or a bad file refused with nothing changed), a damaged
database found by quick_check at start, and a full disk on the very first run."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartduka_tui.store import ChainReport, load_keyring, open_till_store
from tests.store.canaries import new_canary
from tests.support.cli import Runner

PAYBILL = ("--name", "Mama Mboga", "--type", "paybill", "--shortcode", "174379", "--prefix", "DUKA")


def _add_shop(run: Runner, shop_id: str, name: str = "Mama Mboga") -> None:
    secrets = "\n".join(new_canary(tag) for tag in ("ck", "cs", "pk")) + "\n"
    args = ["shop", "add", "--id", shop_id, *PAYBILL]
    args[args.index("Mama Mboga")] = name
    args += ["--consumer-key", "-", "--consumer-secret", "-", "--passkey", "-"]
    result = run(*args, stdin=secrets)
    assert result.code == 0, result.err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _state(data_dir: Path) -> tuple[list[str], list[str], ChainReport]:
    async def read() -> tuple[list[str], list[str], ChainReport]:
        async with open_till_store(data_dir) as store:
            shops = [(await store.shops.require(i)).name for i in await store.shops.list_ids()]
            entries = await store.audit.system_entries(limit=10)
            return shops, [e.action for e in entries], await store.audit.verify_chain()

    return asyncio.run(read())


@pytest.fixture
def keyed(smartduka: Runner) -> Runner:
    assert smartduka("keys", "init").code == 0
    return smartduka


def test_backup_and_restore_round_trip(keyed: Runner, data_dir: Path, tmp_path: Path) -> None:
    _add_shop(keyed, "shop1")
    backup = tmp_path / "till-backup.db"
    made = keyed("backup", str(backup))
    assert made.code == 0, made.err
    assert "The encryption keys are not in it" in made.out
    assert backup.stat().st_mode & 0o077 == 0
    _add_shop(keyed, "shop2", "Later Shop")
    assert _state(data_dir)[0] == ["Mama Mboga", "Later Shop"]

    restored = keyed("restore", str(backup), "--yes")
    assert restored.code == 0, restored.err
    assert "till.db.before-restore" in restored.out
    shops, actions, chain = _state(data_dir)
    assert shops == ["Mama Mboga"]
    assert actions[0] == "store.restored" and chain.intact
    # The database it replaced is kept, whole.
    kept = data_dir / "till.db.before-restore"
    assert kept.exists() and kept.stat().st_mode & 0o077 == 0


def test_the_keys_are_not_in_the_backup(keyed: Runner, data_dir: Path, tmp_path: Path) -> None:
    _add_shop(keyed, "shop1")
    backup = tmp_path / "b.db"
    assert keyed("backup", str(backup)).code == 0
    keyring = load_keyring(data_dir / "keyring")
    raw = backup.read_bytes()
    for key in keyring.keys.values():
        assert key not in raw and key.hex().encode() not in raw


def test_backup_refuses_an_existing_file(keyed: Runner, tmp_path: Path) -> None:
    _add_shop(keyed, "shop1")
    target = tmp_path / "taken.db"
    target.write_text("mine")
    result = keyed("backup", str(target))
    assert result.code == 2 and "already exists; choose a new file name" in result.err
    assert target.read_text() == "mine"


def test_restore_without_yes_or_from_a_bad_file_changes_nothing(
    keyed: Runner, data_dir: Path, tmp_path: Path
) -> None:
    _add_shop(keyed, "shop1")
    backup = tmp_path / "b.db"
    assert keyed("backup", str(backup)).code == 0
    before = _state(data_dir)
    asked = keyed("restore", str(backup))
    assert asked.code == 2 and "run it again with --yes" in asked.err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    bad = keyed("restore", str(junk), "--yes")
    assert bad.code == 1 and "is not a SmartDuka till database, or it is damaged" in bad.err
    missing = keyed("restore", str(tmp_path / "nowhere.db"), "--yes")
    assert missing.code == 2 and "there is no file at" in missing.err
    assert _state(data_dir) == before
    assert not (data_dir / "till.db.before-restore").exists()


def test_restore_with_another_keyring_is_refused(
    keyed: Runner, data_dir: Path, tmp_path: Path
) -> None:
    _add_shop(keyed, "shop1")
    backup = tmp_path / "b.db"
    assert keyed("backup", str(backup)).code == 0
    (data_dir / "keyring").rename(tmp_path / "old-keyring")
    assert keyed("keys", "init").code == 0
    digest = _digest(data_dir / "till.db")
    refused = keyed("restore", str(backup), "--yes")
    assert refused.code == 1
    assert "is not the key this database's secrets were sealed with" in refused.err
    assert _digest(data_dir / "till.db") == digest


def _damage_an_index(database: Path) -> None:
    """Overwrite the first bytes of an index's root page, as a failing disk might."""
    import sqlite3

    with sqlite3.connect(database) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'attempts_by_time'"
        ).fetchone()[0]
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * 16)


def test_a_damaged_database_is_found_at_start_and_left_alone(keyed: Runner, data_dir: Path) -> None:
    _add_shop(keyed, "shop1")
    database = data_dir / "till.db"
    _damage_an_index(database)
    digest = _digest(database)
    result = keyed("transactions", "--json")
    assert result.code == 1 and "Traceback" not in result.err
    assert "is damaged (SQLite's integrity check says:" in result.err
    assert "smartduka restore BACKUP_FILE" in result.err
    assert _digest(database) == digest


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs, filled up: the shop's disk on a bad day (needs root to mount)."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    try:
        filler = (mount_point / "filler").open("wb", buffering=0)
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass
        finally:
            filler.close()
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_on_the_first_run_gives_a_clear_message(
    smartduka: Runner, full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTDUKA_DATA_DIR", str(full_disk / "data"))
    monkeypatch.setenv("SMARTDUKA_ENCRYPTION_KEY", "ab" * 32)
    result = smartduka("manager", "status")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err and "Errno" not in result.err
    assert "is full: this change was not saved" in result.err
    assert "Free some space on that disk, then try again." in result.err
