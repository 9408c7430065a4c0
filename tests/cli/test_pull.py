"""`smartduka pull`, in process, against a real simulator process of this module's own: its
clock is never advanced, so the command's system clock and M-Pesa's agree (the session's
shared simulator runs ahead by what other tests advanced it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from smartduka_tui.clock import SystemClock
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.store import Store, database_path, keyring_path
from smartduka_tui.store.vault import load_keyring
from tests.conftest import unique_phone
from tests.support.cli import Result, Runner
from tests.support.processes import ServerProcess


@pytest.fixture(scope="module")
def own_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess("smartduka_tui.simulator", tmp_path_factory.mktemp("pullsim")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pull_cli(
    smartduka: Runner, own_simulator: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> Runner:
    monkeypatch.setenv("SMARTDUKA_PULL__NOMINATED_NUMBER", "254708374149")

    def invoke(*args: str) -> Result:
        return smartduka("pull", "--simulator", own_simulator.base_url, *args)

    return invoke


async def _state(data_dir: Path) -> tuple[str, int, int, str | None]:
    """(shortcode, pulled rows, open problems, last-pull error) of the demo shop."""
    store = await Store.open(database_path(data_dir), keyring=load_keyring(keyring_path(data_dir)))
    try:
        [shop_id] = await store.shops.list_ids()
        shop = await store.shops.require(shop_id)
        assert shop.business_shortcode is not None
        status = await store.pull.status(shop_id, shop.business_shortcode)
        return (
            shop.business_shortcode,
            await store.pull.count(shop_id),
            len(await store.problems.list(shop_id)),
            None if status is None else status.error,
        )
    finally:
        await store.close()


def state(data_dir: Path) -> tuple[str, int, int, str | None]:
    return asyncio.run(_state(data_dir))


async def _pay(url: str, shortcode: str, amounts: list[int]) -> None:
    async with SimulatorControl(url) as sim:
        for amount in amounts:
            await sim.pay_till(shortcode, unique_phone(), amount)


def test_pull_prints_progress_and_a_summary(
    pull_cli: Runner, own_simulator: ServerProcess, data_dir: Path
) -> None:
    first = pull_cli()
    assert first.code == 0, first.text
    assert "pulled 0 rows (0 pages)" in first.out
    shortcode = state(data_dir)[0]
    asyncio.run(_pay(own_simulator.base_url, shortcode, [100, 250, 300]))
    second = pull_cli()
    assert second.code == 0, second.text
    assert "page 1: 3 rows so far" in second.out
    assert (
        f"pulled 3 rows (1 pages) for {shortcode}: 3 new, 0 receipt numbers filled, "
        "3 problems found (3 money without a sale, 0 sales paid twice)"
    ) in second.out
    again = pull_cli("--json", "--since", "2h")
    assert again.code == 0, again.text
    figures = json.loads(again.out)
    assert (figures["rows"], figures["new_rows"], figures["problems_found"]) == (3, 0, 0)
    assert "page 1: 3 rows so far" in again.err
    assert state(data_dir)[1:] == (3, 3, None)


@pytest.mark.parametrize(
    ("since", "words"),
    [
        ("49h", "is more than 48 hours ago: Pull Transactions covers only the last 48 hours"),
        ("3d", "is more than 48 hours ago"),
        ("future", "is in the future"),
        ("yesterday-ish", "is neither a date and time"),
    ],
)
def test_a_bad_since_is_refused_and_changes_nothing(
    pull_cli: Runner, own_simulator: ServerProcess, data_dir: Path, since: str, words: str
) -> None:
    assert pull_cli().code == 0
    shortcode = state(data_dir)[0]
    asyncio.run(_pay(own_simulator.base_url, shortcode, [120]))
    before = state(data_dir)
    if since == "future":
        later = SystemClock().now().astimezone(KENYA_TZ) + timedelta(hours=1)
        since = later.replace(tzinfo=None).isoformat(timespec="minutes")
    result = pull_cli("--since", since)
    assert result.code == 2, result.text
    assert words in result.err
    assert state(data_dir) == before


def test_the_summary_and_json_say_what_another_till_holds() -> None:
    from datetime import datetime

    from smartduka_tui.cli.pull import as_json, summary
    from smartduka_tui.payments.pull import PullReport
    from smartduka_tui.ui.manager.direct_payments import report_words

    moment = datetime(2026, 12, 4, 8, 0, tzinfo=KENYA_TZ)
    report = PullReport(
        shortcode="600100", start=moment, end=moment, pages=1, rows=4, new_rows=4,
        receipts_filled=0, money_without_sale=1, paid_twice=0, known_elsewhere=3,
        resolved_elsewhere=2, shop_check=None,
    )  # fmt: skip
    text = summary(report)
    assert "1 problems found (1 money without a sale, 0 sales paid twice)" in text
    assert "; 3 known at another till, 2 earlier money-without-a-sale problems resolved" in text
    assert "note:" not in text
    figures = as_json(report)
    assert (figures["known_elsewhere"], figures["resolved_elsewhere"]) == (3, 2)
    assert figures["shop_check"] is None
    assert "3 known at another till." in report_words(report)
    down = PullReport(
        shortcode="600100", start=moment, end=moment, pages=1, rows=4, new_rows=0,
        receipts_filled=0, money_without_sale=4, paid_twice=0,
        shop_check="the shop-wide check could not be made (the relay is unreachable)",
    )  # fmt: skip
    assert summary(down).endswith(
        "\nnote: the shop-wide check could not be made (the relay is unreachable)"
    )
    assert as_json(down)["shop_check"].startswith("the shop-wide check")
    assert "Note: the shop-wide check could not be made" in report_words(down)
