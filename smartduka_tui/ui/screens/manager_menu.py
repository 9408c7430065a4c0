"""F9: the screens other packages added (see `smartduka_tui.ui.manager`), as a menu."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from smartduka_tui.ui.extensions import ScreenCommand
from smartduka_tui.ui.widgets.footer import TillFooter

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp


class ManagerMenuScreen(ModalScreen[None]):
    CSS_PATH = "manager_menu.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="manager_menu.close"),
    ]

    def __init__(self, commands: list[ScreenCommand]) -> None:
        super().__init__()
        self.commands = {command.id: command for command in commands}

    def compose(self) -> ComposeResult:
        app = cast("SmartDukaApp", self.app)
        with Vertical(id="menu-dialog", classes="dialog"):
            yield Label("Manager", id="menu-title")
            yield OptionList(
                *(Option(f"{c.title}: {c.describe(app)}", id=c.id) for c in self.commands.values()),
                id="menu-options",
            )
        yield TillFooter()

    @on(OptionList.OptionSelected)
    def _open(self, event: OptionList.OptionSelected) -> None:
        command = self.commands.get(event.option.id or "")
        if command is not None:
            self.dismiss(None)
            cast("SmartDukaApp", self.app).open_extension(command)
