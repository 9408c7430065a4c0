"""One problem payment in full: the facts, what the manager can do, and its whole timeline from
the audit log in plain words.

C asks M-Pesa again now (an STK query, applied like any other evidence); M marks it resolved
with a note (audited); V asks M-Pesa to reverse a paid payment, or on a "paid twice" problem
the sale's second payment (a note says why). Each key is greyed, with the reason shown, when
it cannot apply.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from smartduka_tui.manager import ActionResult, ProblemDetail
from smartduka_tui.mpesa.kenya_time import KENYA_TZ
from smartduka_tui.payments.reversal import ReversalTarget
from smartduka_tui.ui.manager.base import ManagerScreen
from smartduka_tui.ui.manager.note import ResolveNoteScreen


def facts_text(detail: ProblemDetail) -> Text:
    text = Text()
    for number, (label, value) in enumerate(detail.facts):
        if number:
            text.append("\n")
        text.append(f"{label:<12}", style="bold")
        text.append(value)
    return text


def advice_text(detail: ProblemDetail) -> str:
    lines = [f"• {line}" for line in detail.advice]
    if detail.recheck_blocked:
        lines.append(f"(Re-check: {detail.recheck_blocked})")
    if detail.resolve_blocked:
        lines.append(f"(Resolve: {detail.resolve_blocked})")
    return "\n".join(lines)


def timeline_text(detail: ProblemDetail) -> Text:
    text = Text()
    for number, step in enumerate(detail.timeline):
        if number:
            text.append("\n")
        text.append(step.at.astimezone(KENYA_TZ).strftime("%H:%M:%S "), style="bold")
        text.append(f"{step.who}: ", style="italic")
        text.append(step.text)
    return text


class ProblemDetailScreen(ManagerScreen):
    CSS_PATH = "problem_detail.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "c",
            "recheck",
            "Re-check",
            id="problem.recheck",
            tooltip="Ask M-Pesa about this payment now",
        ),
        Binding(
            "m",
            "resolve",
            "Resolved",
            id="problem.resolve",
            tooltip="Mark it resolved with a note saying what was done",
        ),
        Binding(
            "v",
            "reverse",
            "Reverse",
            id="problem.reverse",
            tooltip="Give the customer this payment back through M-Pesa (a note says why)",
        ),
    ]
    WAITS = frozenset({"recheck", "resolve", "reverse"})

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.detail: ProblemDetail | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="detail-body"):
            yield Label("", id="detail-title")
            yield Static("", id="detail-facts")
            yield Label("What you can do", classes="detail-heading")
            yield Static("", id="detail-advice")
            yield Label("Timeline", classes="detail-heading")
            yield Static("", id="detail-timeline")

    def on_mount(self) -> None:
        self.query_one("#detail-body").focus()
        self.call_service(lambda: self.manager.detail(self.key), self._show, "opening a payment")

    def _show(self, detail: ProblemDetail) -> None:
        self.detail = detail
        row = detail.row
        title = (
            f"{row.key} · {row.what}"
            + (" · resolved" if row.resolved else "")
            + (" · reversed" if row.reversed else "")
        )
        self.query_one("#detail-title", Label).update(title)
        self.query_one("#detail-facts", Static).update(facts_text(detail))
        self.query_one("#detail-advice", Static).update(advice_text(detail))
        self.query_one("#detail-timeline", Static).update(timeline_text(detail))

    def _done(self, result: ActionResult) -> None:
        self._show(result.detail)
        self.show_notice(result.message)

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        detail = self.detail
        if action == "recheck":
            return None if detail is None or not detail.can_recheck else True
        if action == "resolve":
            return None if detail is None or not detail.can_resolve else True
        if action == "reverse":
            if self.manager.reversals is None:
                return False  # Not offered at all without the relay to bring M-Pesa's result.
            blocked = detail is None or self.manager.reverse_blocked(detail.row) is not None
            return None if blocked else True
        return True

    def action_recheck(self) -> None:
        if self.detail is None or not self.detail.can_recheck or self.busy:
            return
        key = self.key
        self.call_service(
            lambda: self.manager.recheck(key),
            self._done,
            "re-checking a payment",
            working="Asking M-Pesa…",
        )

    def action_resolve(self) -> None:
        if self.detail is None or not self.detail.can_resolve or self.busy:
            return

        def resolved(result: ActionResult | None) -> None:
            if result is not None:
                self._done(result)

        self.app.push_screen(ResolveNoteScreen(self.key), resolved)

    def action_reverse(self) -> None:
        detail = self.detail
        if detail is None or self.busy or self.manager.reverse_blocked(detail.row) is not None:
            return
        key = self.key
        # A paid payment is reversed itself; a "paid twice" problem, its sale's second payment.
        self.call_service(
            lambda: self.manager.reversal_target(key), self._ask_note, "opening a reversal"
        )

    def _ask_note(self, target: ReversalTarget) -> None:
        # Loaded when first asked for: most manager sessions never reverse a payment.
        from smartduka_tui.ui.manager.reversal import ReversalScreen

        key = self.key

        def reversed_or_not(result: ActionResult | None) -> None:
            if result is not None:
                self._done(result)

        screen = ReversalScreen(target, lambda note: self.manager.reverse(key, note))
        self.app.push_screen(screen, reversed_or_not)
