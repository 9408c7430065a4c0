"""One line near the footer for plain messages: a refusal, a hint, an unexpected problem."""

from __future__ import annotations

from typing import Literal

from textual.widgets import Static

Severity = Literal["information", "warning", "error"]


class Notice(Static):
    DEFAULT_CSS = """
    Notice {
        display: none;
        height: auto;
        padding: 0 1;
        margin: 0 1;
    }
    Notice.-shown { display: block; }
    Notice.-information { background: $primary-muted; }
    Notice.-warning { background: $warning-muted; }
    Notice.-error { background: $error-muted; text-style: bold; }
    """

    def show(self, text: str, severity: Severity = "information") -> None:
        self.update(text)
        self.set_classes(f"-shown -{severity}")

    def clear(self) -> None:
        if self.has_class("-shown"):
            self.update("")
            self.set_classes("")

    @property
    def text(self) -> str:
        return str(self.content)
