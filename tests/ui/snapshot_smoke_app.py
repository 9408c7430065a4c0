"""A minimal app that proves the snapshot plugin works on this stack."""

from textual.app import App, ComposeResult
from textual.widgets import Label


class SmokeApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Label("SmartDuka Till")


if __name__ == "__main__":
    SmokeApp().run()
