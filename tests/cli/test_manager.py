"""`smartduka transactions` and `smartduka manager ...`, run in this process on a real data folder
holding the fixed story; and the manager PIN in front of the commands that need it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartduka_tui.clock import ManualClock
from smartduka_tui.store import Secret, Store, create_keyring, database_path, keyring_path
from smartduka_tui.store.lock import acquire_data_dir_lock
from smartduka_tui.store.pin import MAX_WRONG_TRIES, ManagerPin
from tests.manager.conftest import FIXED_SECRETS, PIN, SHOP, START, add_shop, tell_story
from tests.support.cli import Runner


async def _seed(data_dir: Path, pin: str | None) -> dict[str, int]:
    data_dir.mkdir(parents=True)
    keyring = create_keyring(keyring_path(data_dir))
    store = await Store.open(database_path(data_dir), clock=ManualClock(START), keyring=keyring)
    try:
        await add_shop(store, FIXED_SECRETS)
        ids, _ = await tell_story(store, store.db.clock)  # type: ignore[arg-type]
        if pin is not None:
            await ManagerPin.of(store).set(Secret(pin))
    finally:
        await store.close()
    return ids


@pytest.fixture
def ids(data_dir: Path) -> dict[str, int]:
    return asyncio.run(_seed(data_dir, PIN))


def audit_actions(data_dir: Path) -> list[str]:
    async def read() -> list[str]:
        store = await Store.open(database_path(data_dir))
        try:
            entries = await store.audit.search(SHOP, include_system=True, limit=1000)
        finally:
            await store.close()
        return [e.action for e in reversed(entries)]

    return asyncio.run(read())


# ------------------------------------------------------------------------------ transactions


def test_transactions_lists_every_payment_newest_first(
    smartduka: Runner, ids: dict[str, int]
) -> None:
    result = smartduka("transactions")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:4] == ["KEY", "WHEN", "(KENYA)", "WHAT"]
    assert lines[-1] == "7 rows."
    assert lines[1].split()[:4] == [f"A{ids['insufficient']}", "2026-01-15", "09:13:56", "Failed"]
    assert "2547******02" in lines[1] and "254712000002" not in result.out
    assert lines[-2].split()[:4] == [f"A{ids['paid']}", "2026-01-15", "09:00:00", "Paid"]


def test_transactions_problems_as_json_match_the_screen_list(
    smartduka: Runner, ids: dict[str, int]
) -> None:
    result = smartduka("transactions", "--problems", "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert [r["key"] for r in rows] == [
        "P2",
        "P1",
        f"A{ids['insufficient']}",
        f"A{ids['unknown']}",
        f"A{ids['late']}",
        f"A{ids['review']}",
        f"A{ids['expired']}",
        f"A{ids['cancelled']}",
    ]
    late = rows[4]
    assert late["problem"] == "late" and late["receipt"] == "SDK9Z8Y7X6"
    assert late["phone"] == "2547******05" and late["amount"] == 350


def test_transactions_filters_and_csv(smartduka: Runner, ids: dict[str, int]) -> None:
    result = smartduka(
        "transactions",
        "--state",
        "failed",
        "--since",
        "2026-01-15",
        "--until",
        "2026-01-15",
        "--phone",
        "0712 000 002",
        "--csv",
    )
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [(r["key"], r["result_code"], r["phone"]) for r in rows] == [
        (f"A{ids['insufficient']}", "1", "2547******02"),
        (f"A{ids['cancelled']}", "1032", "2547******02"),
    ]
    limited = smartduka("transactions", "--problems", "--state", "late,expired", "--limit", "1")
    assert limited.out.splitlines()[-1] == "1 row."
    nothing = smartduka("transactions", "--problems", "--till", "till9")
    assert nothing.out.splitlines()[-1] == "0 rows."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--state", "lost"), "--state: 'lost' is not a payment state"),
        (("--problems", "--state", "completed"), "--state: 'completed' is not a problem kind"),
        (("--since", "15-01-2026"), "--since: must be a date like 2026-01-15"),
        (("--since", "2026-01-16", "--until", "2026-01-15"), "--until: must be after 'since'"),
        (("--phone", "0612345678"), "--phone: not a Kenyan mobile number"),
        (("--code", "1032;"), "--code: must be an M-Pesa code"),
        (("--limit", "0"), "--limit: must be 1 or more"),
        (("--include-resolved",), "--include-resolved: applies only with --problems"),
        (("--shop", "nope"), "there is no shop 'nope' on this till"),
    ],
)
def test_transactions_refuses_bad_filters_clearly(
    smartduka: Runner, ids: dict[str, int], args: tuple[str, ...], message: str
) -> None:
    result = smartduka("transactions", *args)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith(f"smartduka: error: {message}")


def test_full_phones_need_the_manager_pin(
    smartduka: Runner, ids: dict[str, int], data_dir: Path
) -> None:
    refused = smartduka("transactions", "--full-phones", stdin="1111\n")
    assert refused.code == 1 and "Wrong manager PIN: 4 tries left" in refused.err
    assert refused.out == ""
    shown = smartduka("transactions", "--full-phones", "--json", stdin=f"{PIN}\n")
    assert shown.code == 0, shown.err
    assert {r["phone"] for r in json.loads(shown.out)} >= {"254712000001", "254712000002"}
    assert audit_actions(data_dir)[-2:] == ["manager.sign_in_failed", "manager.sign_in"]


# ------------------------------------------------------------------------------ the PIN gate


def test_commands_that_show_secrets_ask_for_the_pin(
    smartduka: Runner, ids: dict[str, int], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nothing = smartduka("shop", "show", SHOP)
    assert nothing.code == 2 and "this needs the manager PIN" in nothing.err
    wrong = smartduka("shop", "show", SHOP, stdin="0000\n")
    assert wrong.code == 1 and wrong.out == ""
    right = smartduka("shop", "show", SHOP, stdin=f"{PIN}\n")
    assert right.code == 0 and "****0001" in right.out
    monkeypatch.setenv("SMARTDUKA_MANAGER_PIN", PIN)
    assert smartduka("shop", "show", SHOP).code == 0
    purposes = [a for a in audit_actions(data_dir) if a.startswith("manager.sign")]
    assert purposes == ["manager.sign_in_failed", "manager.sign_in", "manager.sign_in"]


def test_wrong_pins_lock_the_cli_out_too(smartduka: Runner, ids: dict[str, int]) -> None:
    for tries_left in range(MAX_WRONG_TRIES - 1, 0, -1):
        result = smartduka("shop", "show", SHOP, stdin="0000\n")
        assert f"{tries_left} tr" in result.err
    locked = smartduka("shop", "show", SHOP, stdin="0000\n")
    assert locked.code == 1 and "locked until" in locked.err
    still = smartduka("shop", "show", SHOP, stdin=f"{PIN}\n")
    assert still.code == 1 and "locked until" in still.err and still.out == ""
    status = json.loads(smartduka("manager", "status", "--json").out)
    assert status["pin_set"] and status["locked_until"] is not None


def test_the_env_pin_counts_tries_like_the_screen(
    smartduka: Runner, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMARTDUKA_MANAGER_PIN in a loop is no way around the lockout: each run is a try."""
    monkeypatch.setenv("SMARTDUKA_MANAGER_PIN", "0000")
    errors = [smartduka("shop", "show", SHOP).err for _ in range(MAX_WRONG_TRIES)]
    for tries_left, err in zip(range(MAX_WRONG_TRIES - 1, 0, -1), errors, strict=False):
        assert f"{tries_left} tr" in err
    assert "locked until" in errors[-1]
    monkeypatch.setenv("SMARTDUKA_MANAGER_PIN", PIN)
    still = smartduka("shop", "show", SHOP)
    assert still.code == 1 and "locked until" in still.err and still.out == ""
    status = json.loads(smartduka("manager", "status", "--json").out)
    assert status["wrong_tries"] == 0 and status["locked_until"] is not None
    assert status["lockouts_in_a_row"] == 1


def test_a_replaced_pin_hash_stops_the_cli_with_the_right_words(
    smartduka: Runner, ids: dict[str, int], data_dir: Path
) -> None:
    """The review's attack: scrypt of a PIN of one's own written over the stored hash."""
    import sqlite3

    forged = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGg="
    with sqlite3.connect(database_path(data_dir)) as conn:
        conn.execute("UPDATE manager_pin SET pin_hash = ?, failures = 0", (forged,))
    result = smartduka("shop", "show", SHOP, stdin="9173\n")
    assert result.code == 1 and result.out == ""
    assert "the stored manager PIN fails its check against this till's encryption key" in (
        result.err
    )
    assert "smartduka manager reset-pin --yes" in result.err


# ------------------------------------------------------------------------------ manager


def test_set_pin_first_then_change_it(smartduka: Runner, data_dir: Path) -> None:
    asyncio.run(_seed(data_dir, None))
    assert "No manager PIN is set" in smartduka("manager", "status").out
    weak = smartduka("manager", "set-pin", stdin="1111\n1111\n")
    assert weak.code == 2 and "must not be one digit repeated" in weak.err
    differ = smartduka("manager", "set-pin", stdin="2580\n2581\n")
    assert differ.code == 2 and "the two new PINs are not the same" in differ.err
    assert "No manager PIN is set" in smartduka("manager", "status").out
    first = smartduka("manager", "set-pin", stdin="2580\n2580\n")
    assert first.code == 0 and first.out == "Manager PIN set.\n"
    wrong = smartduka("manager", "set-pin", stdin="9999\n3691\n3691\n")
    assert wrong.code == 1 and "Wrong manager PIN" in wrong.err
    changed = smartduka("manager", "set-pin", stdin="2580\n3691\n3691\n")
    assert changed.code == 0 and changed.out == "Manager PIN changed.\n"
    assert "2580" not in changed.out + changed.err


def test_reset_pin_needs_yes_and_the_encryption_key(
    smartduka: Runner, ids: dict[str, int], data_dir: Path
) -> None:
    assert "run it again with --yes" in smartduka("manager", "reset-pin").err
    (data_dir / "keyring").rename(data_dir / "keyring.away")
    no_key = smartduka("manager", "reset-pin", "--yes")
    assert no_key.code == 1
    assert json.loads(smartduka("manager", "status", "--json").out)["pin_set"] is True
    (data_dir / "keyring.away").rename(data_dir / "keyring")
    reset = smartduka("manager", "reset-pin", "--yes")
    assert reset.code == 0 and "Manager PIN removed" in reset.out
    assert json.loads(smartduka("manager", "status", "--json").out)["pin_set"] is False
    assert "manager.pin_reset" in audit_actions(data_dir)


def test_resolve_from_the_command_line(
    smartduka: Runner, ids: dict[str, int], data_dir: Path
) -> None:
    key = f"A{ids['cancelled']}"
    wrong = smartduka("manager", "resolve", key, "--note", "refunded", stdin="0000\n")
    assert wrong.code == 1
    bad_note = smartduka("manager", "resolve", key, "--note", " ", stdin=f"{PIN}\n")
    assert bad_note.code == 2 and "note: say what was done" in bad_note.err
    done = smartduka("manager", "resolve", key, "--note", "refunded", stdin=f"{PIN}\n")
    assert done.code == 0 and done.out == f"{key} marked resolved.\n"
    again = smartduka("manager", "resolve", key, "--note", "refunded", stdin=f"{PIN}\n")
    assert again.code == 2 and "already marked resolved" in again.err
    listed = json.loads(smartduka("transactions", "--problems", "--json").out)
    assert key not in [r["key"] for r in listed]
    assert audit_actions(data_dir).count("attempt.resolved") == 1


def test_resolve_as_paid_or_not_paid_from_the_command_line(
    smartduka: Runner, ids: dict[str, int], data_dir: Path
) -> None:
    expired, review = f"A{ids['expired']}", f"A{ids['review']}"
    bad = smartduka("manager", "resolve", expired, "--note", "x", "--paid", "??", stdin=f"{PIN}\n")
    assert bad.code == 2 and "receipt: give the M-Pesa receipt number" in bad.err
    assert "nothing changed" in bad.err
    paid = smartduka(
        "manager", "resolve", expired, "--note", "statement", "--paid", "SDX9K2M4QA",
        stdin=f"{PIN}\n",
    )  # fmt: skip
    assert paid.code == 0, paid.err
    not_paid = smartduka(
        "manager", "resolve", review, "--note", "statement", "--not-paid", stdin=f"{PIN}\n"
    )
    assert not_paid.code == 0, not_paid.err
    history = json.loads(smartduka("transactions", "--json").out)
    states = {r["key"]: (r["state"], r.get("receipt")) for r in history}
    assert states[expired] == ("COMPLETED", "SDX9K2M4QA")
    assert states[review][0] == "FAILED"


def test_resolve_needs_a_pin_to_exist(smartduka: Runner, data_dir: Path) -> None:
    asyncio.run(_seed(data_dir, None))
    result = smartduka("manager", "resolve", "A2", "--note", "x")
    assert result.code == 2 and "needs a manager PIN" in result.err


# ------------------------------------------------------------------ beside the open app


def test_read_only_commands_run_beside_the_open_app(
    smartduka: Runner, ids: dict[str, int], data_dir: Path
) -> None:
    """Issue #12 case 10: `transactions` and `manager status` refused to run while the app
    held the data folder. The lock taken here is the one the running app holds."""
    with acquire_data_dir_lock(data_dir):
        listed = smartduka("transactions", "--json")
        status = smartduka("manager", "status")
        writer = smartduka("manager", "reset-pin", "--yes", stdin=f"{PIN}\n")
    assert listed.code == 0, listed.err
    assert len(json.loads(listed.out)) == len(ids)
    assert status.code == 0 and status.out.startswith("Manager PIN set at "), status.err
    # A command that changes the folder still waits its turn.
    assert writer.code == 1 and f"{data_dir} is in use by process {os.getpid()}" in writer.err


def test_a_closed_pipe_ends_the_listing_quietly(ids: dict[str, int], data_dir: Path) -> None:
    """Issue #12 case 10: `smartduka transactions | head` ended in a BrokenPipeError traceback.
    The reader here closes before a single line is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTDUKA_")}
    env["SMARTDUKA_DATA_DIR"] = str(data_dir)
    main = "import sys; from smartduka_tui.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", main, "transactions"],
        cwd=data_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err and err == b""
