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
from importlib import import_module
from typing import TYPE_CHECKING, Any

from smartduka_tui.ui.extensions import ScreenCommand

if TYPE_CHECKING:
    from textual.screen import Screen

    from smartduka_tui.ui.app import SmartDukaApp

SCREENS = (
    # id, title, help, module.class (loaded when first opened), what the PIN dialog opens
    (
        "problems",
        "Problem payments",
        "Failed, stuck and suspicious payments: check, resolve, export",
        "problems.ProblemsScreen",
        "problem payments",
    ),
    (
        "settings",
        "M-Pesa settings",
        "Paybill or till, credentials, relay enrolment, verify",
        "mpesa_settings.MpesaSettingsScreen",
        "the M-Pesa settings",
    ),
    (
        "audit",
        "Audit log",
        "Every change, and a check that none was altered",
        "audit_log.AuditLogScreen",
        "the audit log",
    ),
    (
        "history",
        "Sales history",
        "The daily summary and every payment of a day",
        "history.HistoryScreen",
        "the sales history",
    ),
    (
        "direct_payments",
        "Direct payments",
        "Direct payments no sale holds, and the last M-Pesa statement pull",
        "direct_payments.DirectPaymentsScreen",
        "the direct payments",
    ),
    (
        "shifts",
        "Shifts",
        "Open the shift with a float, X report, close with the cash counted (Z)",
        "shifts.ShiftsScreen",
        "the shifts",
    ),
)
"""The manager screens the app offers, in menu order."""


def behind_pin(screen: str, purpose: str) -> Callable[[SmartDukaApp], Screen[Any]]:
    """`open` for a manager screen: the screen itself while signed in, else the PIN first."""

    def target() -> Screen[Any]:
        module, _, name = screen.partition(".")
        made: Screen[Any] = getattr(import_module(f"{__name__}.{module}"), name)()
        return made

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
    return tuple(
        ScreenCommand(
            id=f"manager.{id_}",
            title=title,
            help=help_,
            open=behind_pin(screen, purpose),
            available=has_manager_service,
            locked=needs_sign_in,
        )
        for id_, title, help_, screen, purpose in SCREENS
    )
