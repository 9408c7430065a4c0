"""Manager screens: the place for problem payments, M-Pesa settings, the audit log, history and
PIN sign-in.

Add a screen here by writing its module in this package (one module per screen with its `.tcss`
beside it, like `ui/screens/`) and listing a `ScreenCommand` for it in `screen_commands()`. The
app then offers it in the command palette (Ctrl+P) and in the manager menu (F9); no other file
changes. A PIN gate belongs in `ScreenCommand.open` (return the sign-in screen, which pushes the
real one on success) or in `available`.
"""

from __future__ import annotations

from smartduka_tui.ui.extensions import ScreenCommand


def screen_commands() -> tuple[ScreenCommand, ...]:
    """The manager screens the app offers, in menu order."""
    return ()
