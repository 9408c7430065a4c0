"""The real app, driven with Pilot, on a till whose manager PIN hash was replaced in the
database file: the sign-in dialog says the database was edited, and no manager screen opens."""

from __future__ import annotations

import sqlite3

from smartduka_tui.store import database_path
from smartduka_tui.ui.manager.problems import ProblemsScreen
from tests.manager.conftest import PIN, SIZE, Seeded, build_app, settle
from tests.manager.test_screens import message_of, open_menu_item

# What the security review wrote over the hash: scrypt of a PIN of its own, no pepper.
FORGED = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGg="


async def test_a_replaced_pin_hash_is_refused_on_the_screen_with_the_right_words(
    seeded: Seeded,
) -> None:
    with sqlite3.connect(database_path(seeded.data_dir)) as conn:
        conn.execute("UPDATE manager_pin SET pin_hash = ?", (FORGED,))
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_menu_item(pilot, "problems")
        dialog = app.screen
        for pin in ("9173", PIN):
            await pilot.press(*pin, "enter")
            await settle(pilot)
            message = message_of(dialog)
            assert "fails its check against this till's encryption key" in message
            assert "smartduka manager reset-pin --yes" in message
            assert app.screen is dialog and not isinstance(app.screen, ProblemsScreen)
    actions = [e.action for e in await seeded.store.audit.system_entries(limit=100)]
    assert "manager.sign_in" not in actions


async def test_a_lockout_edited_away_keeps_the_screens_shut_with_the_recovery_route(
    seeded: Seeded,
) -> None:
    """Issue #17: the lockout's counters reset by hand in the file; even the right PIN is
    refused with words that name the edit and the reset, and no manager screen opens."""
    with sqlite3.connect(database_path(seeded.data_dir)) as conn:
        conn.execute("UPDATE manager_pin SET failures = 0, locked_until = NULL, lockouts = 0")
        conn.execute("UPDATE manager_pin SET failures = 4")
    app = build_app(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await open_menu_item(pilot, "problems")
        dialog = app.screen
        await pilot.press(*PIN, "enter")
        await settle(pilot)
        message = message_of(dialog)
        assert "count of wrong tries fails its check" in message
        assert "smartduka manager reset-pin --yes" in message
        assert app.screen is dialog and not isinstance(app.screen, ProblemsScreen)
    actions = [e.action for e in await seeded.store.audit.system_entries(limit=100)]
    assert "manager.sign_in" not in actions
