"""Manager screens: the place for problem payments, M-Pesa settings, the audit log, history,
shifts and PIN sign-in.

Add a screen here by writing its module in this package (one module per screen with its `.tcss`
beside it, like `ui/screens/`) and listing a `ScreenCommand` for it in `screen_commands()`. The
app then offers it in the command palette (Ctrl+P) and in the manager menu (F9); no other file
changes. A PIN gate belongs in `ScreenCommand.open` (return the sign-in screen, which pushes the
real one on success) or in `available`.

Every screen here needs the manager PIN: `open` gives the sign-in dialog (or, on first run, the
dialog that sets the PIN) unless a manager is signed in already. They are offered only when the
app was given the manager tools (`AppServices.manager_tools`). The session ends on F10, when the
last manager screen closes, or after five minutes without a key (see `base.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smartduka_tui.ui.extensions import ScreenCommand

if TYPE_CHECKING:
    from textual.screen import Screen

    from smartduka_tui.ui.app import SmartDukaApp


def _problems() -> Screen[Any]:
    from smartduka_tui.ui.manager.problems import ProblemsScreen

    return ProblemsScreen()


def _settings() -> Screen[Any]:
    from smartduka_tui.ui.manager.mpesa_settings import MpesaSettingsScreen

    return MpesaSettingsScreen()


def _audit() -> Screen[Any]:
    from smartduka_tui.ui.manager.audit_log import AuditLogScreen

    return AuditLogScreen()


def _history() -> Screen[Any]:
    from smartduka_tui.ui.manager.history import HistoryScreen

    return HistoryScreen()


def _direct_payments() -> Screen[Any]:
    from smartduka_tui.ui.manager.direct_payments import DirectPaymentsScreen

    return DirectPaymentsScreen()


def _shifts() -> Screen[Any]:
    from smartduka_tui.ui.manager.shifts import ShiftsScreen

    return ShiftsScreen()


def behind_pin(
    target: Callable[[], Screen[Any]], purpose: str
) -> Callable[[SmartDukaApp], Screen[Any]]:
    """`open` for a manager screen: the screen itself while signed in, else the PIN first."""

    def open_screen(app: SmartDukaApp) -> Screen[Any]:
        from smartduka_tui.ui.manager.sign_in import SignInScreen

        manager = app.services.manager
        if manager is not None and manager.session.signed_in:
            return target()
        return SignInScreen(target, purpose)

    return open_screen


def has_manager_service(app: SmartDukaApp) -> bool:
    return app.services.has_manager


def needs_sign_in(app: SmartDukaApp) -> bool:
    manager = app.services.manager
    return manager is None or not manager.session.signed_in


def screen_commands() -> tuple[ScreenCommand, ...]:
    """The manager screens the app offers, in menu order."""
    return (
        ScreenCommand(
            id="manager.problems",
            title="Problem payments",
            help="Failed, stuck and suspicious payments: check, resolve, export",
            open=behind_pin(_problems, "problem payments"),
            available=has_manager_service,
            locked=needs_sign_in,
        ),
        ScreenCommand(
            id="manager.settings",
            title="M-Pesa settings",
            help="Paybill or till, credentials, relay enrolment, verify",
            open=behind_pin(_settings, "the M-Pesa settings"),
            available=has_manager_service,
            locked=needs_sign_in,
        ),
        ScreenCommand(
            id="manager.audit",
            title="Audit log",
            help="Every change, and a check that none was altered",
            open=behind_pin(_audit, "the audit log"),
            available=has_manager_service,
            locked=needs_sign_in,
        ),
        ScreenCommand(
            id="manager.history",
            title="Sales history",
            help="The daily summary and every payment of a day",
            open=behind_pin(_history, "the sales history"),
            available=has_manager_service,
            locked=needs_sign_in,
        ),
        ScreenCommand(
            id="manager.direct_payments",
            title="Direct payments",
            help="Direct payments no sale holds, and the last M-Pesa statement pull",
            open=behind_pin(_direct_payments, "the direct payments"),
            available=has_manager_service,
            locked=needs_sign_in,
        ),
        ScreenCommand(
            id="manager.shifts",
            title="Shifts",
            help="Open the shift with a float, X report, close with the cash counted (Z)",
            open=behind_pin(_shifts, "the shifts"),
            available=has_manager_service,
            locked=needs_sign_in,
        ),
    )
