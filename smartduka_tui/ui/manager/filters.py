"""Filter dialogs for the problem list and the audit log: typed text in, a filter out.

The text is parsed by the manager service's own parsers, so a screen and `smartduka
transactions` accept the same dates, kinds, codes and phones, with the same messages. A bad
field keeps the dialog open, names what is wrong and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widgets import Footer, Input, Label, Static

from smartduka_tui.manager import (
    ACTOR_NAMES,
    AuditFilter,
    ManagerInputError,
    ProblemCategory,
    ProblemFilter,
    audit_filter_from_text,
    problem_filter_from_text,
)
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.mpesa.phone import format_local
from smartduka_tui.ui.manager.base import ManagerModal
from smartduka_tui.ui.widgets.inputs import till_input

if TYPE_CHECKING:
    pass

R = TypeVar("R", ProblemFilter, AuditFilter)


def typed_moment(moment: datetime | None, *, end: bool = False) -> str:
    """How a filter's time is written back into its field (the inverse of the parser)."""
    if moment is None:
        return ""
    local = moment.astimezone(KENYA_TZ)
    if local.time() == time.min:
        return (local - timedelta(days=1) if end else local).strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%d %H:%M")


class _FilterDialog(ManagerModal[R]):
    CSS_PATH = "filters.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "clear", "Clear all", id="filter.clear", tooltip="Empty every field"),
    ]
    TITLE_TEXT = ""
    HELP_TEXT = ""
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    """(input id, label, placeholder)"""
    FIELD_FOR_ERROR: ClassVar[dict[str, str]] = {}

    filter_error_text = getters.query_one("#filter-error", Static)

    def initial(self) -> dict[str, str]:
        return {}

    def compose(self) -> ComposeResult:
        values = self.initial()
        with Vertical(id="filter-dialog", classes="dialog"):
            yield Label(self.TITLE_TEXT, id="filter-title")
            with Grid(id="filter-form"):
                for input_id, label, placeholder in self.FIELDS:
                    yield Label(label, classes="filter-label")
                    yield till_input(
                        id=input_id,
                        value=values.get(input_id, ""),
                        placeholder=placeholder,
                        compact=True,
                    )
            yield Static(self.HELP_TEXT, id="filter-help")
            yield Static("", id="filter-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @property
    def error_text(self) -> str:
        return str(self.filter_error_text.content)

    def values(self) -> dict[str, str]:
        return {
            input_id: self.query_one(f"#{input_id}", Input).value for input_id, _, _ in self.FIELDS
        }

    def action_clear(self) -> None:
        for widget in self.query(Input):
            widget.value = ""

    @on(Input.Submitted)
    def _apply(self) -> None:
        for widget in self.query(Input):
            widget.remove_class("-invalid")
        try:
            chosen = self.parse(self.values())
        except ManagerInputError as error:
            input_id = self.FIELD_FOR_ERROR.get(error.field, error.field)
            label = next((text for i, text, _ in self.FIELDS if i == input_id), error.field)
            self.filter_error_text.update(f"{label}: {error.message}. Nothing changed.")
            found = self.query(f"#{input_id}")
            if found:
                found.first(Input).add_class("-invalid")
                found.first(Input).focus()
            return
        self.dismiss(chosen)

    def parse(self, values: dict[str, str]) -> R:
        raise NotImplementedError


class ProblemFilterScreen(_FilterDialog[ProblemFilter]):
    TITLE_TEXT = "Filter problem payments"
    HELP_TEXT = "Kinds: " + ", ".join(c.value for c in ProblemCategory) + ". Enter applies."
    FIELDS = (
        ("since", "From", "2026-01-15 or 2026-01-15 14:00"),
        ("until", "To", "2026-01-15 (that day included)"),
        ("state", "Kind", "failed, expired, late…"),
        ("code", "Code", "1032"),
        ("phone", "Phone", "0712 345 678"),
        ("till", "Till", "till1"),
    )
    FIELD_FOR_ERROR: ClassVar[dict[str, str]] = {"result_code": "code"}

    def __init__(self, current: ProblemFilter) -> None:
        super().__init__()
        self.current = current

    def initial(self) -> dict[str, str]:
        current = self.current
        return {
            "since": typed_moment(current.since),
            "until": typed_moment(current.until, end=True),
            "state": ", ".join(sorted(c.value for c in current.categories or ())),
            "code": current.result_code or "",
            "phone": format_local(current.phone) if current.phone else "",
            "till": current.till_id or "",
        }

    def parse(self, values: dict[str, str]) -> ProblemFilter:
        return problem_filter_from_text(
            since=values["since"],
            until=values["until"],
            state=values["state"],
            code=values["code"],
            phone=values["phone"],
            till=values["till"],
            include_resolved=self.current.include_resolved,
        )


class AuditFilterScreen(_FilterDialog[AuditFilter]):
    TITLE_TEXT = "Filter the audit log"
    HELP_TEXT = "Who: " + ", ".join(ACTOR_NAMES) + ". What: the start of an action name."
    FIELDS = (
        ("actor", "Who", "manager, callback…"),
        ("action", "What", "attempt. or manager.sign"),
        ("since", "From", "2026-01-15"),
        ("until", "To", "2026-01-15 (that day included)"),
        ("attempt", "Payment", "A12"),
    )

    def __init__(self, current: AuditFilter) -> None:
        super().__init__()
        self.current = current

    def initial(self) -> dict[str, str]:
        current = self.current
        return {
            "actor": ", ".join(sorted(a.value for a in current.actors or ())),
            "action": current.action_prefix or "",
            "since": typed_moment(current.since),
            "until": typed_moment(current.until, end=True),
            "attempt": "" if current.attempt_id is None else f"A{current.attempt_id}",
        }

    def parse(self, values: dict[str, str]) -> AuditFilter:
        return audit_filter_from_text(
            actor=values["actor"],
            action=values["action"],
            since=values["since"],
            until=values["until"],
            attempt=values["attempt"],
        )
