"""What every manager screen shares: the session behind the PIN, activity, idle sign-out, and
leaving the manager area.

A manager screen exists only while a manager is signed in. Activity (a key, typing, moving in a
table, an action) restarts the session's idle timer; the app's clock tick checks it, and an idle
session is signed out (audited) and every manager screen closes. Closing the last manager
screen signs out too, so a cashier who takes the till back finds no manager screen open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import events
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, DataTable, Input, Select

from smartduka_tui.manager import ManagerError, ManagerService, NotSignedIn
from smartduka_tui.ui.screens.base import ServiceCalls, TillScreen

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp

R = TypeVar("R")

SIGNED_OUT_IDLE = "Manager signed out: no key was pressed for {minutes} minutes."
SIGNED_OUT = "Manager signed out."


PAGE_KEYS = Binding.Group("Page")
"""Next and previous page share one footer entry ("n p Page"): 80 columns hold every key."""


def manager_of(app: Any) -> ManagerService:
    manager = cast("SmartDukaApp", app).services.manager
    if manager is None:
        raise RuntimeError("the manager screens need AppServices.manager_tools")
    return manager


def is_manager_screen(screen: Screen[Any]) -> bool:
    return isinstance(screen, ManagerScreen | ManagerModal)


def top_manager_screen(app: SmartDukaApp) -> ManagerScreen | None:
    found = [s for s in app.screen_stack if isinstance(s, ManagerScreen)]
    return found[-1] if found else None


def leave_manager_area(app: SmartDukaApp, notice: str) -> None:
    """Close every manager screen (and anything opened above them), then say why on the
    screen the cashier gets back. Nothing to do (and nothing said) once they are closed."""
    if not any(is_manager_screen(s) for s in app.screen_stack):
        return
    while len(app.screen_stack) > 1 and any(is_manager_screen(s) for s in app.screen_stack):
        app.pop_screen()
    screen = app.screen
    if isinstance(screen, TillScreen):
        screen.show_notice(notice)
    else:
        app.notify(notice)


class _Activity:
    """Mixin: anything the manager does on this screen counts as activity."""

    @property
    def manager(self) -> ManagerService:
        return manager_of(cast("Screen[Any]", self).app)

    def touch(self) -> None:
        self.manager.session.touch()

    # Named handlers (not @on): Textual finds these on a mixin through the MRO, and a
    # screen's own @on handlers for the same messages still run.
    def on_key(self, event: events.Key) -> None:
        self.touch()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.touch()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.touch()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.touch()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.touch()


class ManagerScreen(_Activity, TillScreen):
    """A full screen behind the manager PIN: the till's frame plus Back and Sign out."""

    FOOTER_PALETTE = False
    REFUSALS: ClassVar[tuple[type[Exception], ...]] = (ManagerError,)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="manager.back", tooltip="Close this screen"),
        Binding(
            "f10",
            "sign_out",
            "Sign out",
            id="manager.sign_out",
            tooltip="End the manager session and close the manager screens",
        ),
    ]

    def on_mount(self) -> None:
        self.watch(self.app, "now", self._tick, init=False)

    def route_refusal(self, error: Exception, refused: Callable[[Any], object] | None) -> None:
        """An ended session closes the manager screens, whatever the call would do with a
        refusal."""
        if isinstance(error, NotSignedIn):
            leave_manager_area(self.till, SIGNED_OUT)
        else:
            super().route_refusal(error, refused)

    def clock_moved(self, now: datetime) -> None:
        """The app's clock tick, where the app pushes it to its screens (the watch above covers
        an app that does not); `_tick` is safe to run twice for one tick."""
        self._tick(now)

    def _tick(self, now: datetime) -> None:
        # Every manager screen watches the clock; the top one acts for them all.
        if not self.is_attached or top_manager_screen(self.till) is not self:
            return
        manager = self.manager
        session = manager.session
        if session.idle_expired():
            minutes = round(session.idle_timeout_s / 60)
            # The screens close now; the audited sign-out follows on a worker.
            self._in_background(manager.sign_out_if_idle())
            leave_manager_area(self.till, SIGNED_OUT_IDLE.format(minutes=minutes))
        elif not session.signed_in:
            leave_manager_area(self.till, SIGNED_OUT)

    def _in_background(self, work: Awaitable[object]) -> None:
        """Run `work` on an app worker: it outlives this screen, which is closing."""
        self.app.run_worker(work, group="manager-session", exit_on_error=False)

    def action_sign_out(self) -> None:
        self._in_background(self.manager.sign_out("signed out"))
        leave_manager_area(self.till, SIGNED_OUT)

    def action_close(self) -> None:
        """Back to the screen below; the last manager screen closing ends the session."""
        self.app.pop_screen()
        if not any(is_manager_screen(s) for s in self.app.screen_stack):
            self._in_background(self.manager.sign_out("left the manager screens"))


class ManagerModal(_Activity, ServiceCalls, ModalScreen[R]):
    """A dialog over a manager screen (filters, a note); Escape closes it."""

    REFUSALS: ClassVar[tuple[type[Exception], ...]] = (ManagerError,)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="manager_modal.cancel"),
    ]

    def action_cancel(self) -> None:
        self.dismiss(None)
