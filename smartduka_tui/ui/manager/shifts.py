"""The till's shift: open it with the float (O), the X report mid-shift (X), close it with the
cash counted (C: the Z number and the difference), print the report shown (P).

Each action goes to the shift desk (payments/shifts.py) on a worker; what the desk refuses
(a second open shift, X or close with no open shift, a figure that is not whole shillings) is
shown in its words and nothing changes. The close counts blind: the dialog does not show what
the drawer should hold, the Z report does once the count is in. A printer that is missing or
fails never undoes a close: the notice says so, and P prints it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Input, Label, Static

from smartduka_tui.manager import ManagerError
from smartduka_tui.payments.shift_report import ShiftReport
from smartduka_tui.payments.shifts import ClosedShift, Shift, ShiftDesk, ShiftError
from smartduka_tui.receipts.shift_report import closed_words, render_text
from smartduka_tui.ui.manager.base import ManagerModal, ManagerScreen
from smartduka_tui.ui.widgets.inputs import till_input

if TYPE_CHECKING:
    from smartduka_tui.manager import ManagerService

T = TypeVar("T")

NO_SHIFT = "No open shift. O opens one with the float in the drawer."
LISTED = 50
"""Closed shifts listed beside the report (Enter shows one's Z report)."""


def list_cells(shift: Shift) -> tuple[str, str, str]:
    from smartduka_tui.mpesa.kenya_time import KENYA_TZ

    closed = (
        ""
        if shift.closed_at is None
        else shift.closed_at.astimezone(KENYA_TZ).strftime("%d %b %H:%M")
    )
    difference = (
        0
        if shift.counted_cash is None or shift.expected_cash is None
        else shift.counted_cash - shift.expected_cash
    )
    return (
        str(shift.z_number),
        closed,
        f"{difference:+,}" if difference else "0",
    )


def desk_of(manager: ManagerService) -> ShiftDesk:
    """The shift desk of the manager's till (its store, shop, till and printer)."""
    if manager.till_id is None:
        raise ManagerError("this till has no till id enrolled: shifts are kept per till")
    return ShiftDesk(manager.store, manager.shop_id, manager.till_id, manager.settings.printer)


def sentence(text: str) -> str:
    """The desk's words (lower case, as the CLI prints them after "error:") as a sentence."""
    return text[:1].upper() + text[1:]


def status_words(shift: Shift | None) -> str:
    if shift is None:
        return NO_SHIFT
    from smartduka_tui.manager.words import kenya_time

    return (
        f"Shift open since {kenya_time(shift.opened_at)[11:16]} ({shift.cashier}), float "
        f"KES {shift.opening_float:,}. X: report so far; C: close with the cash counted."
    )


def _refusal_only(_: object) -> None:
    """The answer to a call made for its refusal's words (the desk says why it cannot)."""


class ShiftsScreen(ManagerScreen):
    CSS_PATH = "shifts.tcss"
    REFUSALS = (ManagerError, ShiftError)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_shift", "Open", id="shifts.open", tooltip="Open the shift with a float"),
        Binding("x", "x_report", "X report", id="shifts.x", tooltip="The open shift so far"),
        Binding(
            "c", "close_shift", "Close", id="shifts.close", tooltip="Close with the cash counted"
        ),
        Binding("p", "print_report", "Print", id="shifts.print", tooltip="Print the report shown"),
    ]
    WAITS = frozenset({"open_shift", "x_report", "close_shift", "print_report"})

    shifts_list_table = getters.query_one("#shifts-list", DataTable)
    shifts_report_text = getters.query_one("#shifts-report", Static)
    shifts_status_text = getters.query_one("#shifts-status", Static)

    def __init__(self) -> None:
        super().__init__()
        self.shift: Shift | None = None
        self.report: ShiftReport | None = None

    @property
    def desk(self) -> ShiftDesk:
        return desk_of(self.manager)

    def compose_body(self) -> ComposeResult:
        with Vertical(id="shifts-body"):
            yield Label(f"Shift of till {self.till.services.identity.till_id}", id="shifts-title")
            yield Static("", id="shifts-status")
            with Horizontal(id="shifts-main"):
                with VerticalScroll(id="shifts-scroll"):
                    yield Static("", id="shifts-report")
                yield DataTable(id="shifts-list", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.shifts_list_table
        for label, key, width in (("Z", "z", 4), ("Closed", "closed", 12), ("Diff", "diff", 8)):
            table.add_column(label, key=key, width=width)

    @property
    def status_text(self) -> str:
        return str(self.shifts_status_text.content)

    @property
    def report_text(self) -> str:
        return str(self.shifts_report_text.content)

    def on_screen_resume(self) -> None:
        if self.manager.session.signed_in:
            self.load()

    def load(self) -> None:
        desk = self.desk

        async def read() -> tuple[Shift | None, list[Shift]]:
            return await desk.current(), await desk.recent(LISTED)

        self.call_service(read, self._show_state, "reading the shifts")

    def _show_state(self, state: tuple[Shift | None, list[Shift]]) -> None:
        current, shifts = state
        self._show_status(current)
        table = self.shifts_list_table
        table.clear()
        for shift in shifts:
            if shift.z_number is not None:
                table.add_row(*list_cells(shift), key=str(shift.z_number))

    def _show_status(self, shift: Shift | None) -> None:
        self.shift = shift
        self.shifts_status_text.update(status_words(shift))

    @on(DataTable.RowSelected, "#shifts-list")
    def _show_z(self, event: DataTable.RowSelected) -> None:
        if self.busy or event.row_key.value is None:
            return
        z_number = int(event.row_key.value)
        self.call_service(
            partial(self.desk.z_report, z_number), self._show_report, "reading the Z report"
        )

    def _show_report(self, report: ShiftReport) -> None:
        self.report = report
        self.shifts_report_text.update(render_text(report).rstrip("\n"))
        self.query_one("#shifts-scroll", VerticalScroll).scroll_home(animate=False)

    def show_refusal(self, error: ManagerError | ShiftError) -> None:
        """The desk's refusals in the manager screens' own terms (shown, nothing changed)."""
        if isinstance(error, ShiftError):
            self.show_notice(sentence(error.message) + ".", "error")
        else:
            super().show_refusal(error)

    def action_open_shift(self) -> None:
        if not self.busy:
            # Read afresh: the shift may have been opened or closed elsewhere (the CLI).
            self.call_service(self.desk.current, self._open_or_refuse, "reading the shift")

    def _open_or_refuse(self, shift: Shift | None) -> None:
        self._show_status(shift)
        if shift is None:
            self.app.push_screen(OpenShiftScreen(self.desk), self._after_open)
            return
        # The desk refuses it in its own words (and changes nothing).
        cashier = shift.cashier
        self.call_service(partial(self.desk.open, 0, cashier), _refusal_only, "opening the shift")

    def _after_open(self, shift: Shift | None) -> None:
        if shift is None:
            return
        self._show_status(shift)
        self.show_notice(
            f"Shift opened for {shift.cashier} with a float of KES {shift.opening_float:,}.",
            "information",
        )

    def action_x_report(self) -> None:
        if not self.busy:
            self.clear_notice()
            x_report = partial(self.desk.x_report, via="app")
            self.call_service(x_report, self._show_report, "the X report")

    def action_close_shift(self) -> None:
        if not self.busy:
            self.call_service(self.desk.current, self._close_or_refuse, "reading the shift")

    def _close_or_refuse(self, shift: Shift | None) -> None:
        self._show_status(shift)
        if shift is not None:
            self.app.push_screen(CloseShiftScreen(self.desk), self._after_close)
            return
        self.call_service(
            partial(self.desk.close, 0, via="app"), _refusal_only, "closing the shift"
        )

    def _after_close(self, closed: ClosedShift | None) -> None:
        if closed is None:
            return
        # The shift's line and the list are read again as this screen resumes.
        report = closed.report
        self._show_report(report)
        words = closed_words(report)
        if not self.desk.printer_configured:
            self.show_notice(
                f"{words} No receipt printer is set up (printer.kind in the settings): P "
                "prints it once one is.",
                "warning",
            )
            return
        self.show_notice(f"{words} Printing the Z report…")
        self._print_after_close(report, words)

    def _print_after_close(self, report: ShiftReport, words: str) -> None:
        """The Z report to the printer once the close has landed: a slow or missing printer
        holds up nothing, and its failure leaves the close as it is."""

        def printed(_: object) -> None:
            self.show_notice(f"{words} Z report printed.", "information")

        def not_printed(error: ShiftError) -> None:
            self.show_notice(f"{words} Not printed: {error.message}. P prints it again.", "warning")

        self.call_service(
            partial(self.desk.print_report, report, via="app"),
            printed,
            "printing the Z report",
            name="shift-print",
            refusals=(ShiftError,),
            refused=not_printed,
            waits=False,
        )

    def action_print_report(self) -> None:
        if self.busy:
            return
        report = self.report
        if report is None:
            self.show_notice("No report shown: X shows the open shift's.", "error")
            return
        self.show_notice(f"Printing the {report.kind.value} report…")

        def printed(_: object) -> None:
            self.show_notice(f"{report.kind.value} report printed.", "information")

        self.call_service(
            partial(self.desk.print_report, report, via="app"), printed, "printing the report"
        )


class _ShiftDialog(ManagerModal[T]):
    """A figure to type for the shift desk; its refusal shows under the field."""

    CSS_PATH = "shifts.tcss"
    REFUSALS = (ShiftError,)
    """The desk's refusals show under the field; a manager refusal is not expected here."""
    HEADING = ""

    def __init__(self, desk: ShiftDesk) -> None:
        super().__init__()
        self.desk = desk

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog shift-dialog"):
            yield Label(self.HEADING, classes="shift-title")
            yield from self.compose_fields()
            yield Static("", classes="shift-error")
        yield Footer()

    def compose_fields(self) -> ComposeResult:
        """What the dialog asks for, the first field focused."""
        return iter(())

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    @property
    def error_text(self) -> str:
        return str(self.query_one(".shift-error", Static).content)

    def _say(self, text: str) -> None:
        self.query_one(".shift-error", Static).update(text)

    def _refused(self, error: ShiftError) -> None:
        self._say(f"{sentence(error.message)}. Nothing was changed.")

    def attempt(self, call: Callable[[], Awaitable[T]], doing: str) -> None:
        if not self.busy:
            self.call_service(
                call,
                self.dismiss,
                doing,
                refused=self._refused,
                failed=partial(self._say, "Nothing was changed. Try again."),
            )


class OpenShiftScreen(_ShiftDialog[Shift]):
    HEADING = "Open the shift"

    float_input = getters.query_one("#float", Input)

    def compose_fields(self) -> ComposeResult:
        yield Static("The float: the cash in the drawer now, in whole shillings.")
        yield till_input(id="float", max_length=12, placeholder="e.g. 2000", compact=True)
        yield Static("Who runs the till this shift.")
        yield till_input(id="cashier", max_length=40, value="Cashier", compact=True)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        cashier = self.query_one("#cashier", Input).value
        self.attempt(partial(self.desk.open, self.float_input.value, cashier), "opening the shift")


class CloseShiftScreen(_ShiftDialog[ClosedShift]):
    HEADING = "Close the shift"

    counted_input = getters.query_one("#counted", Input)

    def compose_fields(self) -> ComposeResult:
        yield Static(
            "Count the cash in the drawer (float included) and type it in whole "
            "shillings. The Z report then shows what it should be and the difference."
        )
        yield till_input(id="counted", max_length=12, placeholder="e.g. 2850", compact=True)

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.attempt(
            partial(self.desk.close, self.counted_input.value, via="app"), "closing the shift"
        )


__all__ = ["CloseShiftScreen", "OpenShiftScreen", "ShiftsScreen", "desk_of"]
