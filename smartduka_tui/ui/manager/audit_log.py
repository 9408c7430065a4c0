"""The audit log: every change to payments, settings, the PIN and the log's own chain, newest
first, in plain words; filtered by who, what, when and payment; and a check of the hash chain
that reports intact or the first broken entry."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from smartduka_tui.manager import AuditFilter, AuditLine, AuditPage, ChainVerdict
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.ui.manager.base import PAGE_KEYS, ManagerScreen
from smartduka_tui.ui.manager.filters import AuditFilterScreen

COLUMNS = (("#", "id", 5), ("When", "when", 15), ("Who", "who", 15), ("What", "what", 33))
WHAT_WIDTH = COLUMNS[-1][2]


def cell_text(text: str, width: int = WHAT_WIDTH) -> str:
    """`text` cut to `width` with an ellipsis, so a cut line shows it was cut; the pane under
    the table shows the highlighted entry whole."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


class AuditLogScreen(ManagerScreen):
    CSS_PATH = "audit_log.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter", id="audit.filter", tooltip="Narrow the log"),
        Binding(
            "n", "next_page", "Next", id="audit.next", tooltip="Older entries", group=PAGE_KEYS
        ),
        Binding(
            "p",
            "previous_page",
            "Prev",
            id="audit.previous",
            tooltip="Newer entries",
            group=PAGE_KEYS,
        ),
        Binding(
            "v",
            "verify_chain",
            "Verify chain",
            id="audit.verify",
            tooltip="Check that no entry was altered or removed",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filters = AuditFilter()
        self.starts: list[int | None] = [None]
        self.page: AuditPage | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="audit-body"):
            yield Label("Audit log", id="audit-title")
            yield Static("", id="audit-filter")
            yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="audit-entry")
            yield Static("", id="audit-chain")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        self.load()

    def load(self) -> None:
        filters, start = self.filters, self.starts[-1]
        self.call_service(
            lambda: self.manager.audit_page(filters, start), self._show, "reading the audit log"
        )

    def _show(self, page: AuditPage) -> None:
        self.page = page
        table = self.query_one(DataTable)
        table.clear()
        for line in page.lines:
            when = line.at.astimezone(KENYA_TZ).strftime("%d %b %H:%M:%S")
            table.add_row(str(line.id), when, line.who, cell_text(line.text), key=str(line.id))
        more = " · N for older" if page.next_before_id else ""
        self.query_one("#audit-filter", Static).update(
            f"{self.filters.describe().capitalize()} · page {len(self.starts)}{more}"
        )
        self._describe_highlighted()

    def highlighted(self) -> AuditLine | None:
        table = self.query_one(DataTable)
        lines = self.page.lines if self.page else ()
        if not lines or not 0 <= table.cursor_row < len(lines):
            return None
        return lines[table.cursor_row]

    def _describe_highlighted(self) -> None:
        line = self.highlighted()
        text = "" if line is None else f"{line.action}: {line.text}"
        self.query_one("#audit-entry", Static).update(text)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._describe_highlighted()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_page":
            return None if self.busy or not (self.page and self.page.next_before_id) else True
        if action == "previous_page":
            return None if self.busy or len(self.starts) < 2 else True
        if action == "verify_chain":
            return None if self.busy else True
        return True

    def action_next_page(self) -> None:
        if self.page is not None and self.page.next_before_id is not None and not self.busy:
            self.starts.append(self.page.next_before_id)
            self.load()

    def action_previous_page(self) -> None:
        if len(self.starts) > 1 and not self.busy:
            self.starts.pop()
            self.load()

    def action_filter(self) -> None:
        def chosen(filters: AuditFilter | None) -> None:
            if filters is not None:
                self.filters = filters
                self.starts = [None]
                self.load()

        self.app.push_screen(AuditFilterScreen(self.filters), chosen)

    def action_verify_chain(self) -> None:
        if self.busy:
            return
        self.query_one("#audit-chain", Static).update("Checking every entry…")
        self.call_service(self.manager.verify_chain, self._verdict, "checking the audit chain")

    def _verdict(self, verdict: ChainVerdict) -> None:
        chain = self.query_one("#audit-chain", Static)
        chain.update(verdict.message)
        chain.set_class(verdict.intact, "-intact")
        chain.set_class(not verdict.intact, "-broken")
