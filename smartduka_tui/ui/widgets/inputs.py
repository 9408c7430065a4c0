"""Inputs that follow the app's blink setting (off in tests and screenshots, so frames repeat)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input


def till_input(*, blink: bool, value: str | None = None, **kwargs: Any) -> Input:
    widget = Input(value, **kwargs)
    widget.set_reactive(Input.cursor_blink, blink)
    return widget
