"""`smartduka pay` and `smartduka reconcile` as a script runs them: real subprocesses against
the session's simulator, a fresh data folder each (set up with `--simulator`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from smartduka_tui.clock import SystemClock
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.store.store import Store, database_path, keyring_path
from smartduka_tui.store.vault import load_keyring
from tests.conftest import unique_phone
from tests.support.processes import ServerProcess

MAIN = "import sys; from smartduka_tui.cli import main; sys.exit(main())"


def smartduka(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTDUKA_")}
    env.update(SMARTDUKA_DATA_DIR=str(data_dir), SMARTDUKA_TIMINGS__UI_REFRESH_S="1")
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        cwd=data_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def attempts_in(data_dir: Path) -> int:
    async def count() -> int:
        store = await Store.open(
            database_path(data_dir),
            clock=SystemClock(),
            keyring=load_keyring(keyring_path(data_dir)),
        )
        try:
            row = await store.db.fetchone("SELECT count(*) FROM attempts")
            assert row is not None
            return int(row[0])
        finally:
            await store.close()

    return asyncio.run(count())


def test_pay_paid_prints_json_and_exits_0_then_reconcile(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    data = tmp_path / "data"
    phone = unique_phone()
    result = smartduka(
        data, "pay", "--sale-ref", "CLI1", "--amount", "1,250", "--phone", phone, "--json",
        "--simulator", simulator.base_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["state"] == "COMPLETED" and view["amount"] == 1250 and view["phone"] == phone
    again = smartduka(
        data, "pay", "--sale-ref", "CLI1", "--amount", "1250", "--phone", phone,
        "--simulator", simulator.base_url,
    )  # fmt: skip
    assert again.returncode == 0 and "COMPLETED" in again.stdout
    # Issue #12 case 10: the re-run printed "sent:" though nothing was sent.
    assert again.stdout.startswith("already paid: sale CLI1, KES 1,250 from ")
    assert "no prompt was sent" in again.stdout and "sent:" not in again.stdout
    assert attempts_in(data) == 1, "the same sale again is the same attempt"
    reconciled = smartduka(data, "reconcile", "--json", "--simulator", simulator.base_url)
    assert reconciled.returncode == 0, reconciled.stderr
    figures = json.loads(reconciled.stdout)
    assert figures["open_after"] == 0 and figures["errors"] == 0


def test_pay_without_a_sale_ref_is_numbered_by_the_engine_as_the_app_is(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    """Left out, the sale reference is the engine's next number (MMDD in Kenya time and a
    counter), read from the till's database: a second run goes on from the first."""
    data = tmp_path / "data"
    days = {f"{datetime.now(KENYA_TZ):%m%d}"}
    refs = []
    for _ in range(2):
        result = smartduka(
            data, "pay", "--amount", "10", "--phone", unique_phone(), "--json",
            "--simulator", simulator.base_url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        refs.append(json.loads(result.stdout)["sale_ref"])
    days.add(f"{datetime.now(KENYA_TZ):%m%d}")
    # A Kenya midnight between the two runs starts the new day's numbers at 001 again.
    second = "002" if refs[1][:4] == refs[0][:4] else "001"
    assert [ref[4:] for ref in refs] == ["001", second]
    assert refs[0][:4] in days and refs[1][:4] in days


def test_pay_not_paid_exits_1_with_the_cashiers_message(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    data = tmp_path / "data"
    result = smartduka(
        data, "pay", "--sale-ref", "CLI2", "--amount", "10", "--phone", "254700000001",
        "--simulator", simulator.base_url,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "state: FAILED" in result.stdout
    assert "result code: 1032" in result.stdout
    assert "cancelled" in result.stdout


def test_pay_bad_input_exits_2_and_stores_nothing(tmp_path: Path, simulator: ServerProcess) -> None:
    data = tmp_path / "data"
    cases = [
        (["--amount", "10.50", "--phone", "0712345678"], "amount: must be a whole number"),
        (["--amount", "10", "--phone", "0712"], "phone: too short"),
        (["--amount", "10", "--phone", "0712345678", "--sale-ref", "S-1"], "sale_ref: must be"),
    ]
    for extra, words in cases:
        args = ["pay", "--sale-ref", "CLI3", *extra, "--simulator", simulator.base_url]
        result = smartduka(data, *args)
        assert result.returncode == 2, (extra, result.stdout, result.stderr)
        assert words in result.stderr, (extra, result.stderr)
    assert attempts_in(data) == 0


def test_pay_without_a_set_up_till_exits_3(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = smartduka(data, "pay", "--sale-ref", "X", "--amount", "10", "--phone", "0712345678")
    assert result.returncode == 3
    assert "no encryption key" in result.stderr
    assert "Traceback" not in result.stderr


def test_pay_stops_when_the_shortcode_was_edited_in_the_database(
    tmp_path: Path, simulator: ServerProcess
) -> None:
    """The review's attack on the till: a routing column edited in the file. The till refuses
    before it signs in to Daraja or pushes anything, and says why."""
    import sqlite3

    data = tmp_path / "data"
    first = smartduka(
        data, "pay", "--sale-ref", "RT1", "--amount", "10", "--phone", unique_phone(),
        "--simulator", simulator.base_url,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(database_path(data)) as conn:
        conn.execute("UPDATE shops SET business_shortcode = '600999'")
    edited = smartduka(
        data, "pay", "--sale-ref", "RT2", "--amount", "10", "--phone", unique_phone(),
        "--simulator", simulator.base_url,
    )  # fmt: skip
    assert edited.returncode != 0
    assert "business shortcode in the database differ from the copy sealed" in edited.stderr
    assert "Nothing was sent" in edited.stderr and "Traceback" not in edited.stderr
    assert attempts_in(data) == 1
