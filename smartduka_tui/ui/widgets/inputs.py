"""Inputs that follow the app's blink setting (off in tests and screenshots, so frames repeat),
and the one way a screen reads what was typed when Enter is pressed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from textual import events
from textual.binding import Binding, BindingType
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widgets import Input

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp


class TillInput(Input):
    """An Input whose editing keys (Backspace, Delete, arrows, Home, Ctrl+U...) keep their place
    among the characters typed around them.

    Textual runs a widget's own key bindings only once the key has bubbled up to the app, while
    it inserts a character in the field's own queue at once: in a burst (a fast cashier, a slow
    till) "16010.50", six Backspaces and "160" became 16010, the Backspaces landing after the
    digits. Here the field runs its own binding for the key as it takes the key, as the app
    would have (the focused widget's bindings come first in the chain), and the key goes no
    further; a key the field has no binding for bubbles as before.
    """

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input's own handler (next in the class order) inserts it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()
                return


def till_input(*, value: str | None = None, **kwargs: Any) -> Input:
    """A field made while a screen composes, blinking as the app's options say."""
    widget = TillInput(value, **kwargs)
    widget.set_reactive(Input.cursor_blink, cast("SmartDukaApp", widget.app).options.cursor_blink)
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
