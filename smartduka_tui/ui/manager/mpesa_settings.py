"""M-Pesa settings for this shop: how it is paid, its numbers and credentials, the relay
enrolment, on or off, and a check of the credentials with M-Pesa.

Credentials are typed into masked fields and shown afterwards only as `****` and their last four
characters: a saved one is replaced, never shown. Save (Ctrl+S) validates the whole form first;
a wrong field is marked and named, and nothing is saved. Verify (F6) asks M-Pesa for a token
with the saved key and secret and records the result. Enrol (F7) reads the relay's enrolment
file named in the last field. Esc with unsaved edits asks first: a second Esc discards them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widgets import Checkbox, Input, Label, Select, Static

from smartduka_tui.manager import (
    ManagerError,
    ManagerInputError,
    Secret,
    SettingsForm,
    SettingsView,
    VerifyOutcome,
    VerifyResult,
)
from smartduka_tui.model import ShopSecretField, ShopType, VerificationStatus
from smartduka_tui.ui.format import local_date_time
from smartduka_tui.ui.manager.base import ManagerScreen
from smartduka_tui.ui.widgets.inputs import till_input
from smartduka_tui.ui.widgets.notice import Severity

TYPE_CHOICES = (
    ("Own paybill", ShopType.PAYBILL.value),
    ("Own till (Buy Goods)", ShopType.TILL.value),
    ("Uses the platform", ShopType.PLATFORM.value),
)
SECRET_INPUTS = {
    ShopSecretField.CONSUMER_KEY: "consumer-key",
    ShopSecretField.CONSUMER_SECRET: "consumer-secret",
    ShopSecretField.PASSKEY: "passkey",
}
# Which widget shows each field the service may name in an error, and the word for it.
WIDGET_FOR_FIELD = {
    "name": ("name", "Shop name"),
    "mpesa_type": ("type", "Type"),
    "business_shortcode": ("shortcode", "Shortcode"),
    "till_number": ("till-number", "Till number"),
    "account_prefix": ("prefix", "Account prefix"),
    "enabled": ("enabled", "Enabled"),
    "consumer_key": ("consumer-key", "Consumer key"),
    "consumer_secret": ("consumer-secret", "Consumer secret"),
    "passkey": ("passkey", "Passkey"),
    "relay_url": ("enrol-file", "Relay"),
    "enrolment": ("enrol-file", "Enrolment"),
    "initiator": ("initiator-name", "Initiator"),
    "initiator_name": ("initiator-name", "Initiator name"),
    "initiator_password": ("initiator-password", "Initiator password"),
}
# The initiator (API operator) for receipt checks and reversals: typed together, never shown.
INITIATOR_INPUTS = ("initiator-name", "initiator-password")


def secret_placeholder(shown: str | None) -> str:
    return f"saved {shown} · type to replace" if shown else "not set · type it"


def verification_text(view: SettingsView) -> str:
    status = view.verification_status
    if status is VerificationStatus.VERIFIED and view.verified_at:
        return f"verified {local_date_time(view.verified_at)}"
    checked = (
        f" (last check {local_date_time(view.last_checked_at)})" if view.last_checked_at else ""
    )
    if status is VerificationStatus.FAILED:
        return "M-Pesa refused the credentials" + checked
    return "not verified yet: press F6" + checked


def relay_text(view: SettingsView) -> str:
    if not view.tills:
        return "not enrolled: name the relay's file below, then F7"
    by_relay: dict[str, list[str]] = {}
    for till in view.tills:
        by_relay.setdefault(till.relay_url, []).append(
            f"{till.till_id} (kid {till.active_callback_kid})"
        )
    return "; ".join(f"{', '.join(tills)} → {url}" for url, tills in by_relay.items())


class MpesaSettingsScreen(ManagerScreen):
    CSS_PATH = "mpesa_settings.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="settings.save", tooltip="Check and save the form"),
        Binding(
            "f6", "verify", "Verify", id="settings.verify", tooltip="Check the saved credentials"
        ),
        Binding(
            "f7", "enrol", "Enrol", id="settings.enrol", tooltip="Read the relay's enrolment file"
        ),
    ]
    WAITS = frozenset({"save", "verify", "enrol"})

    enabled_box = getters.query_one("#enabled", Checkbox)
    enrol_file_input = getters.query_one("#enrol-file", Input)
    initiator_password_input = getters.query_one("#initiator-password", Input)
    name_input = getters.query_one("#name", Input)
    prefix_input = getters.query_one("#prefix", Input)
    shortcode_input = getters.query_one("#shortcode", Input)
    till_number_input = getters.query_one("#till-number", Input)
    type_select = getters.query_one("#type", Select)

    def __init__(self) -> None:
        super().__init__()
        self.view: SettingsView | None = None
        self._as_loaded: tuple[object, ...] | None = None
        """The form's values as last read from the service (what Esc would keep)."""
        self._discard_asked = False

    def compose_body(self) -> ComposeResult:
        def field(widget_id: str, **kwargs: Any) -> Input:
            return till_input(id=widget_id, compact=True, **kwargs)

        with Vertical(id="settings-body"):
            yield Label("M-Pesa settings", id="settings-title")
            with Grid(id="settings-form"):
                yield Label("Shop name", classes="settings-label")
                yield field("name", max_length=80)
                yield Label("Type", classes="settings-label")
                yield Select(TYPE_CHOICES, id="type", allow_blank=False, compact=True)
                yield Label("Shortcode", classes="settings-label")
                yield field(
                    "shortcode",
                    restrict=r"[0-9]*",
                    max_length=7,
                    placeholder="paybill or store number",
                )
                yield Label("Till number", classes="settings-label")
                yield field(
                    "till-number", restrict=r"[0-9]*", max_length=7, placeholder="Buy Goods only"
                )
                yield Label("Account prefix", classes="settings-label")
                yield field("prefix", max_length=4, placeholder="1-4 letters or digits")
                for secret_field, widget_id in SECRET_INPUTS.items():
                    yield Label(secret_field.label.capitalize(), classes="settings-label")
                    yield field(widget_id, password=True, max_length=256)
                yield Label("Initiator name", classes="settings-label")
                yield field("initiator-name", password=True, max_length=64)
                yield Label("Init. password", classes="settings-label")
                yield field("initiator-password", password=True, max_length=245)
                yield Label("Payments", classes="settings-label")
                yield Checkbox("M-Pesa payments on", id="enabled", compact=True)
                yield Label("Verified", classes="settings-label")
                yield Static("", id="verification")
                yield Label("Relay", classes="settings-label")
                yield Static("", id="relay")
                yield Label("Enrolment file", classes="settings-label")
                yield field("enrol-file", placeholder="path of the relay's file, then F7")

    def on_mount(self) -> None:
        self.name_input.focus()
        self.call_service(self.manager.settings_view, self._fill, "reading the M-Pesa settings")

    def _fill(self, view: SettingsView) -> None:
        self.view = view
        self.name_input.value = view.name
        self.type_select.value = view.mpesa_type.value
        self.shortcode_input.value = view.business_shortcode or ""
        self.till_number_input.value = view.till_number or ""
        self.prefix_input.value = view.account_prefix
        self.enabled_box.value = view.enabled
        self._show_status(view)
        self._as_loaded = self._values()
        self._discard_asked = False

    def _values(self) -> tuple[object, ...]:
        """Every field Save would send, as typed (the enrolment path is not saved)."""
        inputs = (
            "name",
            "shortcode",
            "till-number",
            "prefix",
            *SECRET_INPUTS.values(),
            *INITIATOR_INPUTS,
        )
        return (
            *(self.query_one(f"#{widget_id}", Input).value for widget_id in inputs),
            self.type_select.value,
            self.enabled_box.value,
        )

    def edited(self) -> bool:
        return self._as_loaded is not None and self._values() != self._as_loaded

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _field_changed(self) -> None:
        # A further edit after the warning is asked about again.
        self._discard_asked = False

    def action_close(self) -> None:
        if self.edited() and not self._discard_asked:
            self._discard_asked = True
            self.show_notice(
                "Unsaved changes: Ctrl+S saves them, Esc again discards them.", "warning"
            )
            return
        super().action_close()

    def _show_status(self, view: SettingsView) -> None:
        self.view = view
        for secret_field, widget_id in SECRET_INPUTS.items():
            widget = self.query_one(f"#{widget_id}", Input)
            widget.value = ""
            widget.placeholder = secret_placeholder(view.secrets.get(secret_field))
        for widget_id in INITIATOR_INPUTS:
            widget = self.query_one(f"#{widget_id}", Input)
            widget.value = ""
        self.query_one("#initiator-name", Input).placeholder = secret_placeholder(view.initiator)
        self.initiator_password_input.placeholder = (
            "saved · type with the name to replace"
            if view.initiator
            else "not set · for receipt checks"
        )
        self.query_one("#verification", Static).update(verification_text(view))
        self.query_one("#relay", Static).update(relay_text(view))

    def form(self) -> SettingsForm:
        def secret(widget_id: str) -> Secret | None:
            value = self.query_one(f"#{widget_id}", Input).value
            return Secret(value) if value.strip() else None

        kind = self.type_select.value
        return SettingsForm(
            name=self.name_input.value,
            mpesa_type=kind if isinstance(kind, str) else "",
            business_shortcode=self.shortcode_input.value,
            till_number=self.till_number_input.value,
            account_prefix=self.prefix_input.value,
            enabled=self.enabled_box.value,
            consumer_key=secret("consumer-key"),
            consumer_secret=secret("consumer-secret"),
            passkey=secret("passkey"),
            initiator_name=secret("initiator-name"),
            # As typed: a password's spaces are its own (blank is "not typed").
            initiator_password=Secret(self.initiator_password_input.value),
        )

    def _clear_marks(self) -> None:
        for widget in self.query(".-invalid"):
            widget.remove_class("-invalid")

    def _refused(self, error: ManagerError) -> None:
        if isinstance(error, ManagerInputError) and error.field in WIDGET_FOR_FIELD:
            widget_id, label = WIDGET_FOR_FIELD[error.field]
            widget = self.query_one(f"#{widget_id}")
            widget.add_class("-invalid")
            widget.focus()
            self.show_notice(f"{label}: {error.message}. Nothing was saved.", "error")
        else:
            self.show_notice(error.message, "error")

    def _saved(self, answer: tuple[SettingsView, str]) -> None:
        view, message = answer
        self._fill(view)
        self.show_notice(message)

    def ready(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.WAITS:
            return None if self.view is None else True
        return True

    def action_save(self) -> None:
        if self.busy:
            return
        self._clear_marks()
        form = self.form()
        self.call_service(
            lambda: self.manager.save_settings(form),
            self._saved,
            "saving the M-Pesa settings",
            refused=self._refused,
        )

    def action_verify(self) -> None:
        if self.busy:
            return
        self._clear_marks()
        self.call_service(
            self.manager.verify_credentials,
            self._verified,
            "verifying the credentials",
            working="Asking M-Pesa…",
        )

    def _verified(self, result: VerifyResult) -> None:
        self._show_status(result.settings)
        severity: Severity = "information" if result.outcome is VerifyOutcome.VERIFIED else "error"
        self.show_notice(result.message, severity)

    def action_enrol(self) -> None:
        if self.busy:
            return
        self._clear_marks()
        path = self.enrol_file_input.value
        self.call_service(
            lambda: self.manager.enrol_from_file(path),
            self._enrolled,
            "enrolling the till",
            refused=self._refused,
        )

    def _enrolled(self, answer: tuple[SettingsView, str]) -> None:
        view, message = answer
        self.enrol_file_input.value = ""
        self._show_status(view)
        self.show_notice(message, "warning")
