"""The audit log: every change to payments, settings, the PIN and the log's own chain, newest
first, in plain words; filtered by who, what, when and payment; and a check of the hash chain
that reports intact or the first broken entry."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from smartduka_tui.manager import AuditFilter, AuditLine, AuditPage, ChainVerdict
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.ui.manager.filters import AuditFilterScreen
from smartduka_tui.ui.manager.paged import PagedTableScreen, page_bindings

COLUMNS = (("#", "id", 5), ("When", "when", 15), ("Who", "who", 15), ("What", "what", 33))
WHAT_WIDTH = COLUMNS[-1][2]


def cell_text(text: str, width: int = WHAT_WIDTH) -> str:
    """`text` cut to `width` with an ellipsis, so a cut line shows it was cut; the pane under
    the table shows the highlighted entry whole."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


class AuditLogScreen(PagedTableScreen[AuditPage, int]):
    CSS_PATH = "audit_log.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter", id="audit.filter", tooltip="Narrow the log"),
        *page_bindings("audit", older="Older entries", newer="Newer entries"),
        Binding(
            "v",
            "verify_chain",
            "Verify chain",
            id="audit.verify",
            tooltip="Check that no entry was altered or removed",
        ),
    ]
    COLUMNS = COLUMNS
    DOING = "reading the audit log"
    WAITS = PagedTableScreen.WAITS | {"verify_chain"}

    audit_chain_text = getters.query_one("#audit-chain", Static)

    def __init__(self) -> None:
        super().__init__()
        self.filters = AuditFilter()

    def compose_body(self) -> ComposeResult:
        with Vertical(id="audit-body"):
            yield Label("Audit log", id="audit-title")
            yield Static("", id="audit-filter")
            yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="audit-entry")
            yield Static("", id="audit-chain")

    def fetch(self, cursor: int | None) -> Awaitable[AuditPage]:
        return self.manager.audit_page(self.filters, cursor)

    def next_cursor(self, page: AuditPage) -> int | None:
        return page.next_before_id

    def fill(self, page: AuditPage) -> None:
        for line in page.lines:
            when = line.at.astimezone(KENYA_TZ).strftime("%d %b %H:%M:%S")
            self.table.add_row(str(line.id), when, line.who, cell_text(line.text), key=str(line.id))
        more = " · N for older" if page.next_before_id else ""
        self.query_one("#audit-filter", Static).update(
            f"{self.filters.describe().capitalize()} · page {self.page_number}{more}"
        )
        self._describe_highlighted()

    def highlighted(self) -> AuditLine | None:
        table = self.table
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

    def action_filter(self) -> None:
        def chosen(filters: AuditFilter | None) -> None:
            if filters is not None:
                self.filters = filters
                self.restart()

        self.app.push_screen(AuditFilterScreen(self.filters), chosen)

    def action_verify_chain(self) -> None:
        if self.busy:
            return
        self.audit_chain_text.update("Checking every entry…")
        self.call_service(self.manager.verify_chain, self._verdict, "checking the audit chain")

    def _verdict(self, verdict: ChainVerdict) -> None:
        chain = self.audit_chain_text
        chain.update(verdict.message)
        chain.set_class(verdict.intact, "-intact")
        chain.set_class(not verdict.intact, "-broken")
