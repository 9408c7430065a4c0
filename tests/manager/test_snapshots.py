"""One SVG snapshot per manager screen state, from the real app on a real till database.

Deterministic by construction: 80x24, the ManualClock's fixed start, the fixed story of
conftest.py (fixed ids, times, phones and fake credentials), the cursor not blinking, toasts
hidden. These use pytest-textual-snapshot's SVG extension through syrupy's `snapshot` (see
tests/ui/test_snapshots.py for why not `snap_compare`). Update with
`pytest tests/manager/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.widgets import Input

from smartduka_tui.ui.manager.filters import AuditFilterScreen, ProblemFilterScreen
from smartduka_tui.ui.manager.history import HistoryScreen
from smartduka_tui.ui.manager.mpesa_settings import MpesaSettingsScreen
from smartduka_tui.ui.manager.note import ResolveNoteScreen
from smartduka_tui.ui.manager.problem_detail import ProblemDetailScreen
from smartduka_tui.ui.manager.problems import ProblemsScreen
from smartduka_tui.ui.manager.sign_in import SignInScreen
from tests.manager.conftest import SIZE, Seeded, build_app, seeded_till, settle
from tests.manager.test_screens import open_menu_item, put, sign_in
from tests.ui.conftest import wait_until


@pytest.fixture
def svg(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


async def shot(pilot: Any, svg: SnapshotAssertion, name: str) -> None:
    await settle(pilot)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    assert svg(name=name) == pilot.app.export_screenshot(simplify=True)


async def enter_wrong_pin(pilot: Any, screen: SignInScreen) -> None:
    """Type a wrong PIN and wait until it has been checked: the screen submits after the
    pending keys, so its worker may not have started yet when the keys are in; a PIN typed
    while the last is still being checked would be dropped."""
    await pilot.press(*"1357", "enter")
    await wait_until(
        pilot,
        lambda: not screen.busy and screen.query_one("#pin", Input).value == "",
        "the PIN to be checked",
    )


async def test_sign_in_wrong_pin_and_lockout(seeded: Seeded, svg: SnapshotAssertion) -> None:
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_menu_item(pilot, "problems")
        screen = app.screen
        assert isinstance(screen, SignInScreen)
        await shot(pilot, svg, "sign_in")
        await enter_wrong_pin(pilot, screen)
        await shot(pilot, svg, "sign_in_wrong_pin")
        for _ in range(4):
            await enter_wrong_pin(pilot, screen)
        await shot(pilot, svg, "sign_in_locked")


async def test_first_run_sets_a_pin(tmp_path: Path, svg: SnapshotAssertion) -> None:
    async with seeded_till(tmp_path, pin=None) as seeded:
        app = build_app(seeded)
        async with app.run_test(size=SIZE) as pilot:
            await open_menu_item(pilot, "problems")
            await pilot.press(*"2580", "enter", *"2581", "enter")
            await shot(pilot, svg, "set_pin_mismatch")


async def test_problem_payments(seeded: Seeded, svg: SnapshotAssertion) -> None:
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(await sign_in(pilot, "problems"), ProblemsScreen)
        await shot(pilot, svg, "problems_list")
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, ProblemFilterScreen)
        await put(pilot, "#state", "failed, lost")
        await pilot.press("enter")
        await shot(pilot, svg, "problems_filter_bad_kind")
        await pilot.press("escape")
        await pilot.press(*["down"] * 6, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ProblemDetailScreen)
        await shot(pilot, svg, "problem_detail_expired")
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, ResolveNoteScreen)
        await pilot.press("enter")
        await shot(pilot, svg, "resolve_note_empty")


async def test_mpesa_settings(seeded: Seeded, svg: SnapshotAssertion) -> None:
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(await sign_in(pilot, "settings"), MpesaSettingsScreen)
        await shot(pilot, svg, "settings")
        await put(pilot, "#shortcode", "12")
        await pilot.press("ctrl+s")
        await shot(pilot, svg, "settings_invalid_shortcode")


async def test_audit_log_and_history(seeded: Seeded, svg: SnapshotAssertion) -> None:
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await sign_in(pilot, "audit")
        await pilot.press("v")
        await shot(pilot, svg, "audit_log_chain_intact")
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, AuditFilterScreen)
        await put(pilot, "#actor", "owner")
        await pilot.press("enter")
        await shot(pilot, svg, "audit_filter_bad_actor")
        await pilot.press("escape")
        await open_menu_item(pilot, "history")
        assert isinstance(app.screen, HistoryScreen)
        await shot(pilot, svg, "history")


async def test_reversal_dialog(seeded: Seeded, svg: SnapshotAssertion) -> None:
    """The reversal dialog over a paid (late) payment, and a note M-Pesa would refuse, which
    is refused before anything is sent (the end-to-end reversal is in
    tests/integration/test_reversal.py)."""
    from smartduka_tui.payments.statement import statement_service
    from smartduka_tui.ui.manager.reversal import ReversalScreen

    reversals = statement_service(seeded.engine)
    seeded.service.reversals = reversals
    try:
        app = build_app(seeded)
        async with app.run_test(size=SIZE) as pilot:
            await sign_in(pilot, "problems")
            app.push_screen(ProblemDetailScreen(f"A{seeded.ids['late']}"))
            await settle(pilot)
            detail: Any = app.screen
            assert detail.check_action("reverse", ()) is True
            await shot(pilot, svg, "problem_detail_paid_late_reversible")
            await pilot.press("v")
            await settle(pilot)
            dialog: Any = app.screen
            assert isinstance(dialog, ReversalScreen)
            await put(pilot, "#reversal-note", "paid twice (STK & till)")
            await shot(pilot, svg, "reversal_note_typed")
            await pilot.press("enter")
            await settle(pilot)
            assert dialog.status_text == (
                "The note goes to M-Pesa, so it may hold only letters, digits, spaces and "
                ". , : / # ' -. Nothing was sent."
            )
            await shot(pilot, svg, "reversal_note_refused")
        rows = await seeded.store.db.fetchall("SELECT id FROM statement_requests")
        assert rows == []
    finally:
        await reversals.aclose()
