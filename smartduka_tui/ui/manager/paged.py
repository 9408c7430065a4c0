"""One paged table for the manager's lists (problems, history, the audit log).

Each list is a table read a page at a time from the manager service, newest first, with N and P
moving to the older page and back. The pages are walked by cursor (the service hands back where
the next page starts), so the screen keeps the cursors it has followed: the last one is the page
shown, and P drops it. A screen says only what differs: its columns, how it fetches a page, how a
page fills the table, and where the next page starts.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar, Generic, TypeVar

from textual import getters
from textual.binding import Binding
from textual.widgets import DataTable

from smartduka_tui.ui.manager.base import PAGE_KEYS, ManagerScreen

PageT = TypeVar("PageT")
CursorT = TypeVar("CursorT")

Column = tuple[str, str, int]
"""A table column: its heading, its key and its width in cells."""


def page_bindings(prefix: str, *, older: str = "", newer: str = "") -> list[Binding]:
    """N and P for a paged list, sharing one footer entry; `older` and `newer` are their
    tooltips."""
    return [
        Binding(
            "n",
            "next_page",
            "Next",
            id=f"{prefix}.next",
            tooltip=older,
            group=PAGE_KEYS,
        ),
        Binding(
            "p",
            "previous_page",
            "Prev",
            id=f"{prefix}.previous",
            tooltip=newer,
            group=PAGE_KEYS,
        ),
    ]


class PagedTableScreen(ManagerScreen, Generic[PageT, CursorT]):
    """A manager screen built around one paged `DataTable`."""

    WAITS: ClassVar[frozenset[str]] = frozenset({"next_page", "previous_page"})
    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    DOING: ClassVar[str] = "reading the list"
    """What a failed fetch was doing, in the words of the unexpected-error report."""

    table = getters.query_one(DataTable)

    def __init__(self) -> None:
        super().__init__()
        self.cursors: list[CursorT | None] = [None]
        self.page: PageT | None = None

    def on_mount(self) -> None:
        table = self.table
        for label, key, width in self.COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        self.load()

    # -- hooks ---------------------------------------------------------------------------------

    def fetch(self, cursor: CursorT | None) -> Awaitable[PageT]:
        """Ask the service for the page starting at `cursor` (None: the newest)."""
        raise NotImplementedError

    def fill(self, page: PageT) -> None:
        """Show `page`: its rows in the table (cleared already) and the screen's own lines."""
        raise NotImplementedError

    def next_cursor(self, page: PageT) -> CursorT | None:
        """Where the page after `page` starts, or None when it is the last."""
        raise NotImplementedError

    # -- paging --------------------------------------------------------------------------------

    @property
    def page_number(self) -> int:
        return len(self.cursors)

    def load(self) -> None:
        """Read the current page again (after paging, a new filter, or coming back)."""
        cursor = self.cursors[-1]
        self.call_service(lambda: self.fetch(cursor), self._show_page, self.DOING)

    def restart(self) -> None:
        """Back to the first page, read afresh (the filter or the day changed)."""
        self.cursors = [None]
        self.load()

    def _show_page(self, page: PageT) -> None:
        self.page = page
        self.table.clear()
        self.fill(page)

    def has_next(self) -> bool:
        return self.page is not None and self.next_cursor(self.page) is not None

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_page":
            return True if self.has_next() else None
        if action == "previous_page":
            return True if len(self.cursors) > 1 else None
        return True

    def action_next_page(self) -> None:
        if self.page is not None and not self.busy:
            cursor = self.next_cursor(self.page)
            if cursor is not None:
                self.cursors.append(cursor)
                self.load()

    def action_previous_page(self) -> None:
        if len(self.cursors) > 1 and not self.busy:
            self.cursors.pop()
            self.load()
