"""The manager PIN in front of every manager screen; on first run it sets the PIN instead.

Opened by a manager menu entry with the screen to show after it (`target`). A right PIN starts
the session and replaces this dialog with the target; a wrong one says how many tries are left;
after too many the PIN is locked for a while (the service keeps the count, audited).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static

from smartduka_tui.manager import (
    ManagerError,
    PinCheck,
    PinOutcome,
    PinStatus,
    Secret,
)
from smartduka_tui.ui.format import local_time
from smartduka_tui.ui.manager.base import manager_of
from smartduka_tui.ui.screens.base import ServiceCalls
from smartduka_tui.ui.widgets.inputs import after_pending_keys, till_input

if TYPE_CHECKING:
    pass

SET_PIN_HELP = (
    "No manager PIN is set on this till yet. Choose one now: 4 to 12 digits, not easy to "
    "guess. It opens the manager screens and the commands that change M-Pesa settings."
)


class SignInScreen(ServiceCalls, ModalScreen[None]):
    CSS_PATH = "sign_in.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Cancel", id="sign_in.cancel"),
        # Enter acts as the app receives it (see `after_pending_keys`): the PIN's Enter moves
        # the focus at once, so the repeat typed straight after it lands in its own field.
        Binding("enter", "enter", show=False, priority=True),
        # Tab from the PIN goes to the repeat the same way: shown and focused at once, not
        # after the focus chain notices it (the digits typed after it belong there).
        Binding("tab", "next_field", show=False, priority=True),
    ]

    pin_input = getters.query_one("#pin", Input)
    pin_repeat_input = getters.query_one("#pin-repeat", Input)
    sign_in_message_text = getters.query_one("#sign-in-message", Static)

    def __init__(self, target: Callable[[], Screen[Any]], purpose: str) -> None:
        super().__init__()
        self.target = target
        self.purpose = purpose
        self.setting = False
        # Until the PIN's status is read it is not known whether this dialog signs in or sets
        # the PIN; Enter pressed before then is kept (a fast typist must not lose keys).
        self.status_known = False
        self._pin_entered_early = False
        self._repeat_entered_early = False

    def compose(self) -> ComposeResult:
        def pin_field(widget_id: str, placeholder: str) -> Input:
            return till_input(
                id=widget_id,
                password=True,
                restrict=r"[0-9]*",
                max_length=12,
                placeholder=placeholder,
            )

        with Vertical(id="sign-in-dialog", classes="dialog"):
            yield Label("Manager PIN", id="sign-in-title")
            yield Static(f"To open {self.purpose}.", id="sign-in-purpose")
            yield pin_field("pin", "PIN")
            yield pin_field("pin-repeat", "the same PIN again")
            yield Static("", id="sign-in-message")
        yield Footer()

    def on_mount(self) -> None:
        self.pin_repeat_input.display = False
        self.pin_input.focus()
        self.call_service(
            manager_of(self.app).pin_status,
            self._status,
            "reading the manager PIN",
            name="pin",
            waits=False,
        )

    @property
    def message(self) -> str:
        return str(self.sign_in_message_text.content)

    def _say(self, text: str, *, error: bool = False) -> None:
        line = self.sign_in_message_text
        line.update(text)
        line.set_class(error, "-error")

    def _status(self, status: PinStatus) -> None:
        self.status_known = True
        repeat = self.pin_repeat_input
        if status.is_set:
            # Signing in: anything typed ahead into the repeat field is not a PIN.
            repeat.value = ""
            repeat.display = False
            if self._pin_entered_early:
                after_pending_keys(self, self._submit)
            else:
                self.pin_input.focus()
            return
        self.setting = True
        self.query_one("#sign-in-title", Label).update("Set the manager PIN")
        self.query_one("#sign-in-purpose", Static).update(SET_PIN_HELP)
        repeat.display = True
        if self._repeat_entered_early:
            after_pending_keys(self, self._submit)

    def action_next_field(self) -> None:
        repeat = self.pin_repeat_input
        signing_in = self.status_known and not self.setting
        if self.focused is self.pin_input and not signing_in:
            repeat.display = True
            self.set_focus(repeat)
        else:
            self.focus_next()

    def action_enter(self) -> None:
        repeat = self.pin_repeat_input
        if self.focused is repeat:
            if self.status_known:
                after_pending_keys(self, self._submit)
            else:
                self._repeat_entered_early = True
        elif self.status_known and not self.setting:
            after_pending_keys(self, self._submit)
        else:
            # Setting the PIN, or perhaps (status not read yet): the next keys are the repeat.
            self._pin_entered_early = not self.status_known
            repeat.display = True
            self.set_focus(repeat)

    def _submit(self) -> None:
        if self.busy:
            return
        pin = Secret(self.pin_input.value)
        repeat = Secret(self.pin_repeat_input.value)
        manager = manager_of(self.app)
        if self.setting:
            call = partial(manager.set_first_pin, pin, repeat)
        else:
            call = partial(manager.sign_in, pin, purpose=self.purpose)
        self._say("Checking…")
        self.call_service(
            call,
            self._checked,
            "checking the manager PIN",
            name="pin",
            refusals=(ManagerError,),
            refused=self._refused,
            failed=partial(self._checked, None, "The PIN could not be checked. Try again."),
        )

    def _refused(self, error: ManagerError) -> None:
        self._checked(None, error.message)

    def _checked(self, check: PinCheck | None, problem: str | None = None) -> None:
        self._pin_entered_early = self._repeat_entered_early = False
        if check is not None and check.accepted:
            self.app.switch_screen(self.target())
            return
        self.pin_input.value = ""
        self.pin_repeat_input.value = ""
        self.pin_input.focus()
        if problem is not None:
            self._say(problem, error=True)
        elif check is not None and check.outcome is PinOutcome.LOCKED and check.locked_until:
            self._say(
                f"Too many wrong PINs: locked until {local_time(check.locked_until)}. "
                "Ask the owner, or wait.",
                error=True,
            )
        elif check is not None:
            self._say(check.explain(), error=True)
