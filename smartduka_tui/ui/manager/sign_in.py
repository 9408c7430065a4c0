"""The manager PIN in front of every manager screen; on first run it sets the PIN instead.

Opened by a manager menu entry with the screen to show after it (`target`). A right PIN starts
the session and replaces this dialog with the target; a wrong one says how many tries are left;
after too many the PIN is locked for a while (the service keeps the count, audited).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, Static

from smartduka_tui.manager import (
    ManagerError,
    PinCheck,
    PinOutcome,
    Secret,
)
from smartduka_tui.ui.format import local_time
from smartduka_tui.ui.manager.base import manager_of
from smartduka_tui.ui.widgets.inputs import after_pending_keys, till_input

if TYPE_CHECKING:
    from smartduka_tui.ui.app import SmartDukaApp

SET_PIN_HELP = (
    "No manager PIN is set on this till yet. Choose one now: 4 to 12 digits, not easy to "
    "guess. It opens the manager screens and the commands that change M-Pesa settings."
)


class SignInScreen(ModalScreen[None]):
    CSS_PATH = "sign_in.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="sign_in.cancel"),
        # Enter acts as the app receives it (see `after_pending_keys`): the PIN's Enter moves
        # the focus at once, so the repeat typed straight after it lands in its own field.
        Binding("enter", "enter", show=False, priority=True),
        # Tab from the PIN goes to the repeat the same way: shown and focused at once, not
        # after the focus chain notices it (the digits typed after it belong there).
        Binding("tab", "next_field", show=False, priority=True),
    ]

    class StatusRead(Message, bubble=False):
        def __init__(self, is_set: bool) -> None:
            super().__init__()
            self.is_set = is_set

    class Checked(Message, bubble=False):
        def __init__(self, check: PinCheck | None, problem: str | None = None) -> None:
            super().__init__()
            self.check = check
            self.problem = problem

    pin_input = getters.query_one("#pin", Input)
    pin_repeat_input = getters.query_one("#pin-repeat", Input)
    sign_in_message_text = getters.query_one("#sign-in-message", Static)

    def __init__(self, target: Callable[[], Screen[Any]], purpose: str) -> None:
        super().__init__()
        self.target = target
        self.purpose = purpose
        self.setting = False
        self.busy = False
        # Until the PIN's status is read it is not known whether this dialog signs in or sets
        # the PIN; Enter pressed before then is kept (a fast typist must not lose keys).
        self.status_known = False
        self._pin_entered_early = False
        self._repeat_entered_early = False

    def compose(self) -> ComposeResult:
        cursor_blink = cast("SmartDukaApp", self.app).options.cursor_blink
        with Vertical(id="sign-in-dialog"):
            yield Label("Manager PIN", id="sign-in-title")
            yield Static(f"To open {self.purpose}.", id="sign-in-purpose")
            yield till_input(
                id="pin",
                password=True,
                restrict=r"[0-9]*",
                max_length=12,
                placeholder="PIN",
                blink=cursor_blink,
            )
            yield till_input(
                id="pin-repeat",
                password=True,
                restrict=r"[0-9]*",
                max_length=12,
                placeholder="the same PIN again",
                blink=cursor_blink,
            )
            yield Static("", id="sign-in-message")
        yield Footer()

    def on_mount(self) -> None:
        self.pin_repeat_input.display = False
        self.pin_input.focus()
        self._read_status()

    @property
    def message(self) -> str:
        return str(self.sign_in_message_text.content)

    def _say(self, text: str, *, error: bool = False) -> None:
        line = self.sign_in_message_text
        line.update(text)
        line.set_class(error, "-error")

    @on(StatusRead)
    def _status(self, message: StatusRead) -> None:
        self.status_known = True
        repeat = self.pin_repeat_input
        if message.is_set:
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
        self.busy = True
        pin = Secret(self.pin_input.value)
        repeat = Secret(self.pin_repeat_input.value)
        self._say("Checking…")
        self._check(pin, repeat)

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        self.busy = False
        self._pin_entered_early = self._repeat_entered_early = False
        check = message.check
        if check is not None and check.accepted:
            self.app.switch_screen(self.target())
            return
        self.pin_input.value = ""
        self.pin_repeat_input.value = ""
        self.pin_input.focus()
        if message.problem is not None:
            self._say(message.problem, error=True)
        elif check is not None and check.outcome is PinOutcome.LOCKED and check.locked_until:
            self._say(
                f"Too many wrong PINs: locked until {local_time(check.locked_until)}. "
                "Ask the owner, or wait.",
                error=True,
            )
        elif check is not None:
            self._say(check.explain(), error=True)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @work(group="pin", exclusive=True, exit_on_error=False)
    async def _read_status(self) -> None:
        status = await manager_of(self.app).pin_status()
        self.post_message(self.StatusRead(status.is_set))

    @work(group="pin", exclusive=True, exit_on_error=False)
    async def _check(self, pin: Secret, repeat: Secret) -> None:
        manager = manager_of(self.app)
        try:
            if self.setting:
                check = await manager.set_first_pin(pin, repeat)
            else:
                check = await manager.sign_in(pin, purpose=self.purpose)
        except ManagerError as error:
            self.post_message(self.Checked(None, error.message))
        except Exception as error:
            cast("SmartDukaApp", self.app).report_unexpected(error, "checking the manager PIN")
            self.post_message(self.Checked(None, "The PIN could not be checked. Try again."))
        else:
            self.post_message(self.Checked(check))
