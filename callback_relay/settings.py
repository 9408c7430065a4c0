"""The relay's settings: `SMARTDUKA_RELAY_*` environment variables, overridden by CLI flags.

Lists (addresses, networks) accept JSON (`["10.0.0.1"]`) or comma-separated text
(`10.0.0.1,10.0.0.0/8`). Every field is documented in the README's "Callback relay" section.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from smartduka_tui.model import Mode

# Safaricom's published callback source addresses (REFERENCE.md section 4).
SAFARICOM_CALLBACK_ADDRESSES: tuple[str, ...] = (
    "196.201.214.200",
    "196.201.214.206",
    "196.201.213.114",
    "196.201.214.207",
    "196.201.214.208",
    "196.201.213.44",
    "196.201.212.127",
    "196.201.212.138",
    "196.201.212.129",
    "196.201.212.136",
    "196.201.212.74",
    "196.201.212.69",
)


def url_problem(url: str, mode: Mode) -> str | None:
    """Why `url` cannot be one the relay is reached at or calls out to in `mode`, or None.

    Production mode takes only https://: callbacks carry payment details and the broker's calls
    carry the platform's credentials. Plain http:// (a relay or simulator on loopback, say) is
    for sandbox mode only.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "must not carry a user name, password, query or fragment"
    if mode is Mode.PRODUCTION and parts.scheme != "https":
        return (
            "must be an https:// URL in production mode (callbacks and the platform's "
            "credentials travel over it); http:// is for sandbox mode only"
        )
    return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NetworkList = Annotated[tuple[Network, ...], NoDecode]


def _split_networks(value: Any) -> Any:
    """Accept a JSON list, a comma-separated string or an iterable of addresses/networks."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            value = json.loads(text)
        else:
            value = [part for part in (p.strip() for p in text.split(",")) if part]
    networks: list[Network] = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{str(item)[:64]!r} is not an IP address or network") from None
    return tuple(networks)


class RelaySettings(BaseSettings):
    """Everything the relay server reads at start."""

    model_config = SettingsConfigDict(env_prefix="SMARTDUKA_RELAY_", extra="forbid")

    db: Path = Field(default=Path("relay.db"), description="SQLite database file.")
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://... to keep the relay's data in PostgreSQL (several instances "
        "may share it); unset: SQLite at `db`.",
    )
    mode: Mode = Field(
        default=Mode.SANDBOX,
        description="production refuses callbacks from unlisted sources; sandbox logs them.",
    )
    public_url: str | None = Field(
        default=None,
        description="The relay's public base URL, written into enrolment files for tills.",
    )
    allowlist: NetworkList = Field(
        default=tuple(ipaddress.ip_network(a) for a in SAFARICOM_CALLBACK_ADDRESSES),
        description="Callback source addresses or networks allowed in production mode.",
    )
    trusted_proxies: NetworkList = Field(
        default=(),
        description="Peers whose X-Forwarded-For is believed (e.g. your load balancer).",
    )
    metrics_allow: NetworkList = Field(
        default=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        description="Client addresses that may read /metrics without a token.",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token that opens /metrics from any address."
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="64 hex characters (AES-256); default: the key file `<db>.key` (mode 0600).",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, description="Largest callback body accepted."
    )
    intake_till_rate_per_s: float = Field(
        default=0,
        ge=0,
        description="Signed callbacks a second per (shop, till), sustained; 0: no quota.",
    )
    intake_till_burst: int = Field(default=100, ge=1, description="Per-till callback burst.")
    intake_source_rate_per_s: float = Field(
        default=0,
        ge=0,
        description="Signed callbacks a second per source address, sustained; 0: no quota.",
    )
    intake_source_burst: int = Field(default=1000, ge=1, description="Per-source burst.")
    max_security_events_per_till: int = Field(
        default=200,
        ge=1,
        description="Unacknowledged security events kept per till; more refusals are counted "
        "in metrics but not stored.",
    )
    feed_max_wait_s: float = Field(
        default=30.0, gt=0, le=120, description="Cap on a long-poll's `wait` parameter."
    )
    feed_batch_size: int = Field(
        default=100, ge=1, le=1000, description="Most events one feed answer carries."
    )
    visibility_timeout_s: float = Field(
        default=30.0, gt=0, description="A delivered, unacknowledged event returns after this."
    )
    max_deliveries: int = Field(
        default=5, ge=1, le=1000, description="Deliveries before an event is dead-lettered."
    )
    retention_days: float = Field(
        default=7.0, ge=0, description="Acknowledged events are kept at least this long."
    )
    prune_interval_s: float = Field(
        default=3600.0, gt=0, description="How often acknowledged events past retention go."
    )
    sweep_interval_s: float = Field(
        default=10.0, gt=0, description="How often expired, over-delivered events dead-letter."
    )
    feed_rate_per_s: float = Field(
        default=5.0, gt=0, description="Feed reads per second per till key (sustained)."
    )
    feed_rate_burst: int = Field(
        default=20, ge=1, description="Feed reads a till key may make in a burst."
    )
    ack_rate_per_s: float = Field(
        default=200.0, gt=0, description="Acknowledgements per second per till key (sustained)."
    )
    ack_rate_burst: int = Field(
        default=1000, ge=1, description="Acknowledgements a till key may make in a burst."
    )
    registry_refresh_s: float = Field(
        default=1.0,
        gt=0,
        description="Shop/till changes made with the CLI reach a running relay within this.",
    )
    busy_timeout_ms: int = Field(
        default=5000, ge=0, description="How long a write waits for a locked database."
    )
    group_commit_max: int = Field(
        default=512, ge=1, description="Most writes committed in one transaction."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Logging level: debug, info, warning or error."
    )

    def env_key(self) -> str | None:
        """The relay key given in the settings (None: the key file next to the database)."""
        return self.encryption_key.get_secret_value() if self.encryption_key else None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value.strip() == "":
            return None
        problem = url_problem(value, info.data.get("mode", Mode.SANDBOX))
        if problem is not None:
            raise ValueError(problem)
        return value.strip().rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("allowlist", "trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        return _split_networks(value)

    @field_validator("encryption_key")
    @classmethod
    def _hex_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        text = value.get_secret_value().strip()
        if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError("must be 64 hexadecimal characters (a 256-bit key)")
        return SecretStr(text)
