"""Problem payments: everything that needs a manager, newest first, filtered and paged.

Failed, expired, unknown and review payments; late, duplicate and receipt-pending payments;
callbacks that matched nothing, events the till could not read, suspicious patterns. Enter opens
one (its timeline and what to do); F filters; N and P page; R shows resolved ones too; E exports
the current filter to CSV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from typing import ClassVar

from rich.text import Text
from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from smartduka_tui.manager import (
    ExportResult,
    ListCursor,
    PaymentRow,
    ProblemFilter,
    RowPage,
)
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.ui.manager.filters import ProblemFilterScreen
from smartduka_tui.ui.manager.paged import PagedTableScreen, page_bindings

COLUMNS = (
    ("When", "when", 12),
    ("Problem", "what", 15),
    ("Sale", "sale", 8),
    ("KES", "amount", 7),
    ("Phone", "phone", 12),
    ("Code", "code", 6),
)


def short_time(row: PaymentRow) -> str:
    return row.created_at.astimezone(KENYA_TZ).strftime("%d %b %H:%M")


def amount_cell(amount: int | None) -> Text:
    return Text("" if amount is None else f"{amount:,}", justify="right")


def table_cells(row: PaymentRow) -> tuple[str | Text, ...]:
    """One row as the table shows it: masked phone, whole shillings."""
    what = row.what + (" ✓" if row.resolved else "")
    return (
        short_time(row),
        what,
        row.sale_ref or "",
        amount_cell(row.amount),
        row.phone_masked or "",
        row.result_code or "",
    )


class ProblemsScreen(PagedTableScreen[RowPage, ListCursor]):
    CSS_PATH = "problems.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter", id="problems.filter", tooltip="Narrow the list"),
        *page_bindings("problems", older="The next, older page", newer="The page before"),
        Binding(
            "r", "toggle_resolved", "Resolved", id="problems.resolved", tooltip="Show resolved too"
        ),
        Binding("e", "export", "Export", id="problems.export", tooltip="Save the list as CSV"),
    ]
    COLUMNS = COLUMNS
    DOING = "listing problem payments"
    WAITS = PagedTableScreen.WAITS | {"export"}

    row_text = getters.query_one("#problems-row", Static)

    def __init__(self, filters: ProblemFilter | None = None) -> None:
        super().__init__()
        self.filters = filters or ProblemFilter()
        self.reload_on_resume = False

    def compose_body(self) -> ComposeResult:
        with Vertical(id="problems-body"):
            yield Label("Problem payments", id="problems-title")
            yield Static("", id="problems-filter")
            yield DataTable(id="problems-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="problems-row")

    @property
    def rows(self) -> tuple[PaymentRow, ...]:
        return self.page.rows if self.page else ()

    def fetch(self, cursor: ListCursor | None) -> Awaitable[RowPage]:
        return self.manager.problems(self.filters, cursor)

    def next_cursor(self, page: RowPage) -> ListCursor | None:
        return page.next_cursor

    def fill(self, page: RowPage) -> None:
        for row in page.rows:
            self.table.add_row(*table_cells(row), key=row.key)
        shown = f"{len(page.rows)} shown" if page.rows else "nothing to show"
        more = " · N for more" if page.next_cursor else ""
        self.query_one("#problems-filter", Static).update(
            f"{self.filters.describe().capitalize()} · page {self.page_number} · {shown}{more}"
        )
        self._describe_highlighted()

    def highlighted(self) -> PaymentRow | None:
        table = self.table
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def _describe_highlighted(self) -> None:
        row = self.highlighted()
        self.row_text.update("" if row is None else f"{row.key} · {row.summary}")

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._describe_highlighted()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        from smartduka_tui.ui.manager.problem_detail import ProblemDetailScreen

        key = event.row_key.value
        if key is not None:
            # The detail may resolve or re-check it: read the list again on the way back.
            self.reload_on_resume = True
            self.app.push_screen(ProblemDetailScreen(key))

    def on_screen_resume(self) -> None:
        if self.reload_on_resume and self.manager.session.signed_in:
            self.reload_on_resume = False
            self.load()

    # -- actions -------------------------------------------------------------------------------

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "export":
            return True if self.rows else None
        return super().ready(action, parameters)

    def _refilter(self, filters: ProblemFilter) -> None:
        self.filters = filters
        self.restart()

    def action_toggle_resolved(self) -> None:
        self._refilter(
            dataclasses.replace(self.filters, include_resolved=not self.filters.include_resolved)
        )

    def action_filter(self) -> None:
        def chosen(filters: ProblemFilter | None) -> None:
            if filters is not None:
                self._refilter(filters)

        self.app.push_screen(ProblemFilterScreen(self.filters), chosen)

    def action_export(self) -> None:
        filters = self.filters
        self.call_service(
            lambda: self.manager.export_csv(filters),
            self._exported,
            "exporting problem payments",
            working="Exporting…",
        )

    def _exported(self, result: ExportResult) -> None:
        self.show_notice(
            f"Exported {result.rows} rows to {result.path} (phones masked).", "information"
        )
