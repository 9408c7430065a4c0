"""Canary secrets (registered for the end-of-session disk scan too) never appear on any manager
screen, in an export, in the audit log, in a log record, or in `smartduka transactions`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from smartduka_tui.manager import AuditFilter, problem_filter_from_text
from smartduka_tui.store import Secret
from tests.manager.conftest import (
    PIN,
    SHOP,
    SIZE,
    Seeded,
    build_app,
    new_canary_secrets,
    seeded_till,
    settle,
)
from tests.manager.screen_text import screen_text
from tests.manager.test_screens import notice_of, put, sign_in
from tests.store.canaries import new_canary


def leaks(text: str, canaries: list[str]) -> list[str]:
    """Which canaries show in `text`, whole or all but the last four characters (the mask
    may show those four)."""
    return [c for c in canaries if c in text or c[:-4] in text]


async def test_no_screen_export_audit_entry_or_log_shows_a_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shop_secrets = new_canary_secrets()
    replacement = new_canary("cs")
    canaries = [*shop_secrets, replacement]
    async with seeded_till(tmp_path, shop_secrets=shop_secrets) as seeded:
        app = build_app(seeded)
        seen: list[str] = []
        async with app.run_test(size=SIZE) as pilot:

            async def look() -> None:
                await settle(pilot)
                seen.append(screen_text(app))

            await sign_in(pilot, "settings")
            await look()
            assert f"saved ****{shop_secrets[0][-4:]}" in seen[-1]
            await put(pilot, "#consumer-secret", replacement)
            await look()
            await pilot.press("ctrl+s")
            await look()
            assert notice_of(app).startswith("Saved.")
            assert app.screen.query_one("#consumer-secret", Input).value == ""
            await pilot.press("f6")
            await look()
            await pilot.press("escape")
            await sign_in(pilot, "problems")
            await look()
            # A pattern, an unmatched callback, a late payment, one in review.
            for row in (0, 1, 4, 5):
                # The list is read again after each detail: its cursor starts at the top.
                await pilot.press(*["down"] * row, "enter")
                await look()
                await pilot.press("escape")
                await settle(pilot)
            await pilot.press("e")
            await look()
            await pilot.press("escape")
            await sign_in(pilot, "audit")
            await look()
            await pilot.press("v")
            await look()
            await pilot.press("escape")
            await sign_in(pilot, "history")
            await look()
        assert len(seen) == 13
        for number, text in enumerate(seen):
            assert leaks(text, canaries) == [], f"screen {number} shows a secret"
        exports = list((seeded.data_dir / "exports").glob("*.csv"))
        assert len(exports) == 1
        assert leaks(exports[0].read_text(), canaries) == []
        entries = await seeded.store.audit.search(SHOP, include_system=True, limit=10_000)
        assert leaks(json.dumps([e.detail for e in entries]), canaries) == []
        stored = await seeded.store.shops.credentials(SHOP)
        assert stored.consumer_secret.reveal() == replacement
    assert caplog.records, "the flow logged something to look at"
    assert leaks(caplog.text, canaries) == []
    assert leaks("\n".join(repr(r.args) for r in caplog.records), canaries) == []


async def test_service_answers_carry_no_secret(signed_in: Seeded) -> None:
    view = await signed_in.service.settings_view()
    answers: list[Any] = [
        view,
        await signed_in.service.verify_credentials(),
        await signed_in.service.problems(problem_filter_from_text()),
        await signed_in.service.audit_page(AuditFilter()),
    ]
    for answer in answers:
        assert leaks(repr(answer), list(signed_in.secrets)) == []
    assert repr(Secret(signed_in.secrets[2])) == "Secret('****')"


def test_transactions_output_has_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import io
    import sys

    from smartduka_tui.cli import main
    from smartduka_tui.clock import ManualClock
    from smartduka_tui.store import Store, create_keyring, database_path, keyring_path
    from smartduka_tui.store.pin import ManagerPin
    from tests.manager.conftest import START, add_shop, tell_story

    canaries = list(new_canary_secrets())
    data_dir = tmp_path / "data"

    async def seed() -> None:
        data_dir.mkdir()
        store = await Store.open(
            database_path(data_dir),
            clock=ManualClock(START),
            keyring=create_keyring(keyring_path(data_dir)),
        )
        try:
            await add_shop(store, (canaries[0], canaries[1], canaries[2]))
            await tell_story(store, store.db.clock)  # type: ignore[arg-type]
            await ManagerPin.of(store).set(Secret(PIN))
        finally:
            await store.close()

    asyncio.run(seed())
    monkeypatch.setenv("SMARTDUKA_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    for args in (
        ["transactions"],
        ["transactions", "--problems", "--json"],
        ["transactions", "--problems", "--csv", "--include-resolved"],
    ):
        assert main(args) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{PIN}\n"))
    assert main(["transactions", "--json", "--full-phones"]) == 0
    assert leaks(out.getvalue(), canaries) == []
    assert "254712000001" in out.getvalue()
