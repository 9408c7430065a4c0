"""Inputs that follow the app's blink setting (off in tests and screenshots, so frames repeat),
and the one way a screen reads what was typed when Enter is pressed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.binding import Binding, BindingType
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widgets import Input


def till_input(*, blink: bool, value: str | None = None, **kwargs: Any) -> Input:
    widget = Input(value, **kwargs)
    widget.set_reactive(Input.cursor_blink, blink)
    return widget


TYPING_ORDER_BINDINGS: list[BindingType] = [
    # Tab moves the focus as the app receives it, not once the field before it has caught up:
    # the keys typed after a Tab then go to the next field even while the first lags behind.
    Binding("tab", "app.focus_next", show=False, priority=True),
    Binding("shift+tab", "app.focus_previous", show=False, priority=True),
]


def after_pending_keys(screen: Screen[Any], callback: Callable[[], object]) -> None:
    """Run `callback` once every field of `screen` has taken the keys that came before this one.

    A priority key (Enter) runs on the app as the terminal delivers it, while the digits typed
    just before it may still wait in the fields' own queues (a busy till falls behind): reading
    a field at once would drop them. The callback goes to the back of each field's queue in
    turn, the focused field first (keys typed after the Enter land there, and must not count).
    """
    fields: list[MessagePump] = [screen.focused] if screen.focused is not None else []
    fields += [field for field in screen.query(Input) if field is not screen.focused]

    def through(index: int) -> None:
        if index == len(fields):
            callback()
        elif not fields[index].call_later(through, index + 1):
            through(index + 1)

    through(0)
