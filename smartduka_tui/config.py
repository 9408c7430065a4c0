"""Till configuration: one TOML file plus `SMARTDUKA_*` environment variables.

Environment variables win over the file; nested keys use a double underscore, for example
`SMARTDUKA_TIMINGS__ATTEMPT_EXPIRY_S=300`. Every key is documented in the README and in
`smartduka.example.toml`. Secrets never live here: they are in the vault.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from smartduka_tui.model import Mode

SANDBOX_BASE_URL = "https://sandbox.safaricom.co.ke"
PRODUCTION_BASE_URL = "https://api.safaricom.co.ke"


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) or a `localhost` name."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def endpoint_url_problem(url: str, mode: Mode) -> str | None:
    """Why the till must not send keys to `url` in `mode`, or None. Production needs https to a
    host that is not this machine (a loopback URL there is a simulator or a redirect); sandbox
    takes http too, for the simulator and a local relay."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host name"
    if mode is Mode.PRODUCTION:
        if parts.scheme != "https":
            return (
                "must be an https:// URL in production mode: over http the keys it is sent "
                "travel in the clear"
            )
        if is_loopback_host(parts.hostname):
            return (
                "must not be a loopback address in production mode (loopback is for the "
                "simulator and a local relay, in sandbox mode only)"
            )
    return None


class DarajaSettings(BaseModel):
    """How the till reaches Daraja (or the simulator)."""

    base_url: str | None = Field(
        default=None,
        description="Daraja base URL; default follows `mode` (sandbox or production host).",
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, description="TCP/TLS connect timeout.")
    read_timeout_s: float = Field(default=20.0, gt=0, description="Wait for a response.")
    token_refresh_margin_s: int = Field(
        default=120, ge=0, description="Refresh an OAuth token this long before it expires."
    )
    query_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Ask a status query again (with backoff) after a transient error.",
    )
    certificate_file: Path | None = Field(
        default=None,
        description="M-Pesa's public certificate (PEM or DER) for the initiator password.",
    )


class RelaySettings(BaseModel):
    """The callback relay this till is enrolled with."""

    url: str | None = Field(
        default=None, description="Relay base URL (HTTPS in production); set by enrolment."
    )
    poll_wait_s: int = Field(default=25, ge=1, le=60, description="Long-poll wait per request.")


class TimingSettings(BaseModel):
    """Timing defaults from the seed; every one is read through the injectable clock."""

    prompt_countdown_s: int = Field(default=60, ge=10, description="STK prompt countdown shown.")
    attempt_expiry_s: int = Field(default=300, ge=30, description="A live attempt expires after.")
    reconcile_interval_s: int = Field(default=120, ge=5, description="Reconciler pass interval.")
    reconcile_min_age_s: int = Field(
        default=30, ge=0, description="Query only attempts pending at least this long."
    )
    retry_delay_s: int = Field(
        default=5, ge=0, description="Least wait before a retry (or the code's own wait)."
    )
    ui_refresh_s: int = Field(default=3, ge=1, description="Status refresh without push events.")
    statement_result_wait_s: int = Field(
        default=30, ge=1, description="Wait for a receipt check's (Transaction Status) result."
    )


class LimitSettings(BaseModel):
    """Limits that protect customers and Daraja quotas."""

    max_retries: int = Field(default=3, ge=0, le=10, description="Retries per sale.")
    pushes_per_minute: int = Field(default=20, ge=1, description="Per-till STK push rate limit.")
    queries_per_second: float = Field(
        default=5.0, gt=0, description="STK query rate per shortcode (reconciler)."
    )
    reconcile_concurrency: int = Field(default=4, ge=1, le=64, description="Queries in flight.")


class MonitorSettings(BaseModel):
    """Suspicious-pattern thresholds."""

    failures_per_phone: int = Field(
        default=3, ge=1, description="Flag a phone with this many failures within window_s."
    )
    failures_per_shop: int = Field(
        default=10, ge=1, description="Flag a shop with this many failures within window_s."
    )
    window_s: int = Field(default=600, ge=60, description="The monitor's window in seconds.")


class PrinterKind(StrEnum):
    NONE = "none"
    FILE = "file"
    NETWORK = "network"
    USB = "usb"


class PrinterSettings(BaseModel):
    """The receipt printer (ESC/POS)."""

    kind: PrinterKind = Field(default=PrinterKind.NONE, description="none, file, network or usb.")
    path: Path | None = Field(
        default=None, description="kind = file: the device or file, e.g. /dev/usb/lp0."
    )
    host: str | None = Field(default=None, description="kind = network: the printer's address.")
    port: int = Field(default=9100, ge=1, le=65535, description="kind = network: its TCP port.")
    usb_vendor: int | None = Field(
        default=None, ge=0, le=0xFFFF, description="kind = usb: vendor id (decimal)."
    )
    usb_product: int | None = Field(
        default=None, ge=0, le=0xFFFF, description="kind = usb: product id (decimal)."
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Give up on an unanswering printer after."
    )
    auto_print: bool = Field(
        default=True, description="Print the receipt as soon as a sale is paid."
    )

    @model_validator(mode="after")
    def _kind_has_its_address(self) -> PrinterSettings:
        needed = {
            PrinterKind.FILE: ("path", self.path),
            PrinterKind.NETWORK: ("host", self.host),
            PrinterKind.USB: ("usb_vendor", self.usb_vendor),
        }.get(self.kind)
        if needed is not None and needed[1] is None:
            raise ValueError(f"printer.{needed[0]} is needed when printer.kind is {self.kind}")
        if self.kind is PrinterKind.USB and self.usb_product is None:
            raise ValueError("printer.usb_product is needed when printer.kind is usb")
        return self


class PullSettings(BaseModel):
    """Pull Transactions: the reconciler's backfill of the shortcode's last 48 hours."""

    interval_s: int = Field(
        default=1800,
        ge=0,
        description="Pull each shortcode this often (0: only on demand, `smartduka pull`).",
    )
    nominated_number: str | None = Field(
        default=None,
        description="The owner's M-Pesa phone, sent when registering for pulls; unset: no "
        "scheduled pull.",
    )


class Settings(BaseSettings):
    """The till's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SMARTDUKA_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    mode: Mode = Field(default=Mode.SANDBOX, description="sandbox or production.")
    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "share" / "smartduka",
        description="Folder for the database, keyring and lock file (one till per folder).",
    )
    keyring_file: Path | None = Field(
        default=None,
        description="Keyring file (mode 0600) with the vault's keys; default <data_dir>/keyring.",
    )
    shop_id: str | None = Field(default=None, description="Shop this till sells for.")
    confirm_callbacks_by_query: bool | None = Field(
        default=None,
        description="Confirm a success callback with an STK query; default on in production.",
    )
    daraja: DarajaSettings = Field(default_factory=DarajaSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    timings: TimingSettings = Field(default_factory=TimingSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    printer: PrinterSettings = Field(default_factory=PrinterSettings)
    pull: PullSettings = Field(default_factory=PullSettings)

    @field_validator("data_dir", "keyring_file", mode="after")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _production_needs_https(self) -> Settings:
        for name, url in (("relay.url", self.relay.url), ("daraja.base_url", self.daraja.base_url)):
            problem = None if url is None else endpoint_url_problem(url, self.mode)
            if problem is not None:
                raise ValueError(f"{name} {problem}")
        return self

    def relay_url_for(self, enrolled_url: str) -> str:
        """The relay URL to use (the setting, else the one stored at enrolment), checked like
        the settings' own: InputError('relay_url', why) for one this mode refuses."""
        from smartduka_tui.store.errors import InputError

        url = (self.relay.url or enrolled_url).rstrip("/")
        problem = endpoint_url_problem(url, self.mode)
        if problem is not None:
            raise InputError("relay_url", f"{problem} (the till's enrolled relay URL is {url})")
        return url

    @property
    def daraja_base_url(self) -> str:
        if self.daraja.base_url:
            return self.daraja.base_url.rstrip("/")
        return PRODUCTION_BASE_URL if self.mode is Mode.PRODUCTION else SANDBOX_BASE_URL

    @property
    def confirm_by_query(self) -> bool:
        if self.confirm_callbacks_by_query is not None:
            return self.confirm_callbacks_by_query
        return self.mode is Mode.PRODUCTION

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from `config_file` (or $SMARTDUKA_CONFIG, or ./smartduka.toml if present),
    the environment, and keyword overrides, in rising order of precedence."""
    chosen = config_file or os.environ.get("SMARTDUKA_CONFIG")
    if chosen is None and Path("smartduka.toml").is_file():
        chosen = "smartduka.toml"
    if chosen is None:
        return Settings(**overrides)
    toml_file = Path(chosen)
    if not toml_file.is_file():
        raise FileNotFoundError(f"configuration file not found: {chosen}")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    return FileSettings(**overrides)
