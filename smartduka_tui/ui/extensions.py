"""How other parts add screens to the cashier app without editing it.

A `ScreenCommand` names a screen, says how to open it, and becomes a command-palette entry and a
line in the manager menu (F9). `smartduka_tui.ui.manager.screen_commands()` is the list the app
uses by default; `make_app(..., extensions=...)` can replace it (tests do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual.screen import Screen

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp


def _always(app: SmartDukaApp) -> bool:
    return True


def _never(app: SmartDukaApp) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class ScreenCommand:
    """A screen another package contributes (the manager tools, for example)."""

    id: str
    """Stable id, e.g. `manager.problems`; used in tests and logs."""
    title: str
    """Palette title and menu line, e.g. `Problem payments`."""
    help: str
    """One line under the title in the palette."""
    open: Callable[[SmartDukaApp], Screen[Any]]
    """Build the screen. Called on the app's loop; do I/O in the screen's workers, not here."""
    available: Callable[[SmartDukaApp], bool] = _always
    """Whether it can be opened right now (hidden from the palette and menu otherwise)."""
    locked: Callable[[SmartDukaApp], bool] = _never
    """Whether opening it asks for the manager PIN first (the menu then says "(PIN)")."""

    def describe(self, app: SmartDukaApp) -> str:
        """The help line as it stands now: "(PIN)" only while opening it would ask for one."""
        return f"{self.help} (PIN)" if self.locked(app) else self.help
