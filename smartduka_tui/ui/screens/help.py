"""F1 help: the keys of the screen it was opened from (greyed ones marked), how a sale goes,
and any extra sections the services bring (the demo lists the simulator's test phones)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from smartduka_tui.ui.services import HelpSection
from smartduka_tui.ui.widgets.footer import TillFooter

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp

HOW_A_SALE_GOES = (
    "1. Type the total (or F3 to add items) and press Enter for M-Pesa, or F10 for cash.\n"
    "2. Type the customer's phone number, or ↓ to pick a recent one, and press Enter.\n"
    "3. The customer enters their M-Pesa PIN on their phone; the screen counts down 60 s.\n"
    "4. Paid: read the receipt number to the customer; Enter starts the next sale.\n"
    "   Not paid: the screen says why and whether it is safe to try again.\n"
    "The end of the countdown is not a failure: M-Pesa may still answer, so retry stays closed "
    "until it does. 'Stop waiting' leaves the payment to be checked in the background.\n"
    "Split: in the cash screen type less in 'Pay in cash' and take the rest by M-Pesa, or press "
    "F3 on the phone screen to charge part by M-Pesa and take the rest with F10. The sale is "
    "done when the tenders add up to the total exactly; F4 on a part paid sale tells the manager.\n"
    "Cash needs an open shift (M-Pesa does not): a manager opens it with the float in the drawer "
    "(F9, Shifts, O) and closes it with the cash counted (C: the Z report, over or short)."
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss", "Close help", id="help.close"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        app = cast("SmartDukaApp", self.app)
        with VerticalScroll(id="help-body"):
            yield Label("SmartDuka Till: help", id="help-title")
            yield Label("Keys on this screen", classes="help-heading")
            yield Static(self._keys_table(), id="help-keys")
            yield Label("A sale, step by step", classes="help-heading")
            yield Static(HOW_A_SALE_GOES, id="help-flow")
            for section in app.services.help_sections:
                yield Label(section.title, classes="help-heading")
                yield Static(section_table(section), classes="help-section")
        yield TillFooter()

    def _keys_table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, active in self.under.active_bindings.items():
            binding = active.binding
            # The screen's and the app's own keys, those kept out of the footer for room (F4,
            # F9, Ctrl+Q) included; a text field's editing keys are not news to anyone.
            if active.node not in (self.under, self.app) or not binding.description:
                continue
            label = self.app.get_key_display(binding) if binding.key == key else key
            meaning = binding.description
            if binding.tooltip:
                meaning += f": {binding.tooltip}"
            if not active.enabled:
                meaning += " (not now)"
            table.add_row(label, Text(meaning, style="" if active.enabled else "dim"))
        return table


def section_table(section: HelpSection) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, meaning in section.rows:
        table.add_row(key, meaning)
    if section.note:
        table.add_row("", Text(section.note, style="italic"))
    return table
