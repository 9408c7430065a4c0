"""The line at the top of every screen: shop, till, connections, the receipt printer (when the
till has one to tell of), attempts awaiting an outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

from smartduka_tui.connectivity import ConnectionState, Reachability

if TYPE_CHECKING:
    from smartduka_tui.printing import PrinterStatus
    from smartduka_tui.ui.app import SmartDukaApp
    from smartduka_tui.ui.services import TillIdentity
    from smartduka_tui.ui.widgets.printer_status import PrinterStatusLabel

_WORDS: dict[Reachability, tuple[str, str]] = {
    Reachability.REACHABLE: ("●", "-ok"),
    Reachability.UNREACHABLE: ("✖", "-down"),
    Reachability.NOT_ANSWERING: ("◐", "-silent"),
    Reachability.UNKNOWN: ("○", "-unknown"),
}

_SUFFIX = {Reachability.UNREACHABLE: " OFFLINE", Reachability.NOT_ANSWERING: " NO REPLY"}


def describe(name: str, reach: Reachability) -> tuple[str, str]:
    """The label text and CSS class for one connection."""
    if reach is Reachability.NOT_USED:
        return "", "-unused"
    mark, css = _WORDS[reach]
    return f"{mark} {name}{_SUFFIX.get(reach, '')}", css


class StatusBar(Horizontal):
    """Shows the app's state; owns none. The app tells every screen's bar of each change (a
    `watch` on the app from here would keep closed screens alive until the value changed)."""

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    StatusBar Label { margin-right: 2; }
    StatusBar #status-shop { text-style: bold; color: $primary; }
    StatusBar .-ok { color: $success; }
    StatusBar .-down { color: $error; text-style: bold; }
    StatusBar .-silent { color: $warning; text-style: bold; }
    StatusBar .-unknown { color: $foreground-muted; }
    StatusBar .-unused { display: none; }
    /* One cell, not two: "✖ Printer OFFLINE" then leaves "0 awaiting outcome" whole in 80. */
    StatusBar #status-printer { margin-right: 1; }
    StatusBar #status-awaiting {
        width: 1fr;
        margin-right: 0;
        text-align: right;
        color: $foreground-muted;
    }
    StatusBar #status-awaiting.-some { color: $warning; text-style: bold; }
    """

    def compose(self) -> ComposeResult:
        app = cast("SmartDukaApp", self.app)
        if app.is_open:
            identity = app.services.identity
            yield Label(identity.shop_label, id="status-shop")
            yield Label(f"Till {identity.till_id}", id="status-till")
        else:
            yield Label(app.TITLE, id="status-shop")
            yield Label("opening the till…", id="status-till")
        yield Label("", id="status-daraja")
        yield Label("", id="status-relay")
        if app.printer is not None:
            yield self._printer_label()
        yield Label("", id="status-awaiting")

    @staticmethod
    def _printer_label() -> PrinterStatusLabel:
        # The printing modules load with the till, behind the painted checkout.
        from smartduka_tui.ui.widgets.printer_status import PrinterStatusLabel

        return PrinterStatusLabel(id="status-printer")

    def on_mount(self) -> None:
        app = cast("SmartDukaApp", self.app)
        self.show_connection(app.connection)
        self.show_awaiting(app.awaiting)
        if app.printer is not None:
            self.show_printer(app.printer.status)

    async def show_identity(self, identity: TillIdentity) -> None:
        """Name the till once it is open (a starting app paints before it knows), and show
        its printer if it has one."""
        self.query_one("#status-shop", Label).update(identity.shop_label)
        self.query_one("#status-till", Label).update(f"Till {identity.till_id}")
        app = cast("SmartDukaApp", self.app)
        if app.printer is not None and not self.query("#status-printer"):
            await self.mount(self._printer_label(), before="#status-awaiting")
            self.show_printer(app.printer.status)

    def show_connection(self, state: ConnectionState) -> None:
        for name, reach, widget_id in (
            ("M-Pesa", state.daraja, "#status-daraja"),
            ("Relay", state.relay, "#status-relay"),
        ):
            text, css = describe(name, reach)
            for label in self.query(widget_id).results(Label):
                label.update(text)
                label.set_classes(css)

    # Each `show_` tells the labels there are: a bar told while it is still being composed has
    # none yet, and reads the app's value when it mounts.

    def show_awaiting(self, count: int) -> None:
        for label in self.query("#status-awaiting").results(Label):
            label.update(f"{count} awaiting outcome")
            label.set_class(count > 0, "-some")

    def show_printer(self, status: PrinterStatus) -> None:
        for label in self.query("#status-printer"):
            cast("PrinterStatusLabel", label).show(status)
