"""What the store hands out and takes in: enums for states, frozen dataclasses for rows.

Money is integer shillings; times are timezone-aware UTC datetimes (stored as epoch
milliseconds, so they sort and subtract exactly).
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum, StrEnum
from operator import itemgetter
from typing import Any, Generic, TypeVar

from smartduka_tui.model import (
    FINAL,
    LIVE,
    Actor,
    AttemptFlag,
    AttemptState,
    ConfirmingClaim,
    ProblemKind,
    ShopSecretField,
    ShopType,
    VerificationStatus,
)
from smartduka_tui.store.secret import Secret

# Shop, till and attempt ids and refs: they are segments of the signed callback path
# (smartduka_tui.mpesa.callback_path), so they follow its rule.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Key ids, of the vault's keys and of callback secrets alike.
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive ones are refused: whose time would it be?)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return round(moment.timestamp() * 1000)


def created_between(
    where: list[str], params: list[Any], since: datetime | None, until: datetime | None
) -> None:
    """Add the `[since, until)` window on `created_at` to a query's conditions and parameters."""
    if since is not None:
        where.append("created_at >= ?")
        params.append(to_ms(since))
    if until is not None:
        where.append("created_at < ?")
        params.append(to_ms(until))


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def opt_from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


R = TypeVar("R")


def _converter(hint: Any) -> Callable[[Any], Any] | None:
    """How a column's value becomes a field of type `hint` (None: as it is)."""
    if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint):
        [inner] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        convert = _converter(inner)
        return None if convert is None else lambda value: None if value is None else convert(value)
    if hint is datetime:
        return from_ms
    if hint is bool:
        return bool
    if typing.get_origin(hint) is Mapping:
        return json.loads
    if isinstance(hint, type) and issubclass(hint, Enum):
        # Members by dict, not by calling the enum: a busy shift reads tens of thousands of
        # rows. A value that is no member (a combination of flags) goes to the enum itself.
        members = {member.value: member for member in hint}
        return lambda value: members.get(value) or hint(value)
    return None


def _then(get: Callable[[Any], Any], convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda row: convert(get(row))


def row_reader(
    cls: type[R], prefix: str = "", *, later: tuple[str, ...] = (), **given: Callable[[Any], Any]
) -> Callable[..., R]:
    """A function that makes a `cls` from a database row: each field from the column of its
    name (after `prefix`), epoch milliseconds as datetimes, text as its enum, 0/1 as bools,
    JSON text as mappings;
    `given` reads a field from the row its own way, and the fields in `later` are passed by
    the caller (`read(row, secret_fields=...)`)."""
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, Callable[[Any], Any]]] = []
    for item in fields(cls):  # type: ignore[arg-type]
        name = item.name
        if name in later:
            continue
        convert = _converter(hints[name])
        get = itemgetter(prefix + name)
        plan.append((name, given.get(name) or (get if convert is None else _then(get, convert))))

    def read(row: Any, **passed: Any) -> R:
        return cls(**{name: value(row) for name, value in plan}, **passed)

    return read


@dataclass(frozen=True, slots=True)
class ShopConfig:
    """A shop's settings as given by a manager: validated as a whole before anything is saved."""

    id: str
    name: str
    mpesa_type: ShopType
    account_prefix: str
    business_shortcode: str | None = None
    till_number: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ShopSecrets:
    """Shop credentials to store; a None field is left as it is."""

    consumer_key: Secret | None = None
    consumer_secret: Secret | None = None
    passkey: Secret | None = None

    def given(self) -> dict[ShopSecretField, Secret]:
        values = {name: getattr(self, name.value) for name in ShopSecretField}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Shop:
    """A stored shop. `secret_fields` names the credentials present (values stay in the vault)."""

    id: str
    name: str
    mpesa_type: ShopType
    business_shortcode: str | None
    till_number: str | None
    account_prefix: str
    enabled: bool
    verification_status: VerificationStatus
    verified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    secret_fields: frozenset[ShopSecretField]

    @property
    def config(self) -> ShopConfig:
        return ShopConfig(**{item.name: getattr(self, item.name) for item in fields(ShopConfig)})

    @property
    def party_b(self) -> str | None:
        """Daraja's PartyB: the till number for Buy Goods, else the shortcode itself."""
        if self.mpesa_type is ShopType.TILL:
            return self.till_number
        return self.business_shortcode

    def account_reference(self, sale_number: str) -> str:
        """AccountReference = prefix + sale number, at most 12 characters (Daraja's limit)."""
        reference = self.account_prefix + sale_number
        if len(reference) > 12:
            raise ValueError(
                f"account reference {reference!r} is {len(reference)} characters; Daraja allows "
                f"12, so the sale number may have at most {12 - len(self.account_prefix)}"
            )
        return reference


@dataclass(frozen=True, slots=True)
class ShopCredentials:
    """What a shop with its own paybill or till needs to call Daraja."""

    shop_id: str
    consumer_key: Secret
    consumer_secret: Secret
    passkey: Secret


@dataclass(frozen=True, slots=True)
class Till:
    id: str
    shop_id: str
    relay_url: str
    active_callback_kid: str
    callback_kids: tuple[str, ...]
    enrolled_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the relay's `shop add` / `till add` hand a till, to keep in its vault."""

    shop_id: str
    till_id: str
    relay_url: str
    till_key: Secret
    callback_kid: str
    callback_secret: Secret


@dataclass(frozen=True, slots=True)
class TillCredentials:
    """What a till needs to talk to its relay and sign callback paths."""

    shop_id: str
    till_id: str
    relay_url: str
    till_key: Secret
    active_callback_kid: str
    callback_secrets: Mapping[str, Secret]

    @property
    def active_callback_secret(self) -> Secret:
        return self.callback_secrets[self.active_callback_kid]


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """A payment attempt to write before its STK push goes out."""

    shop_id: str
    till_id: str
    sale_ref: str
    amount: int
    phone: str
    idempotency_key: str
    attempt_ref: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """One STK push attempt for one sale."""

    id: int
    shop_id: str
    till_id: str
    sale_ref: str
    amount: int
    phone: str
    idempotency_key: str
    attempt_ref: str
    attempt_number: int
    state: AttemptState
    previous_state: AttemptState | None
    merchant_request_id: str | None
    checkout_request_id: str | None
    result_code: str | None
    result_desc: str | None
    receipt_number: str | None
    created_at: datetime
    push_sent_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime
    updated_at: datetime
    flags: AttemptFlag
    review_note: str | None
    confirming: ConfirmingClaim | None = None
    """A callback's claim awaiting its confirming STK query (None: nothing awaits)."""
    confirming_code: str | None = None
    confirming_receipt: str | None = None
    handed_over_at: datetime | None = None
    """When the cashier stopped waiting and left the attempt to the reconciler."""
    finished_at: datetime | None = None
    """When it reached a final state."""
    review_reason: str | None = None
    """Why it went to NEEDS_REVIEW, in words for the manager."""

    @property
    def is_live(self) -> bool:
        return self.state in LIVE


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """`applied` is False when the attempt was not in an expected state (compare-and-set
    refused); `attempt` is the row as it is now either way."""

    applied: bool
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page of a newest-first listing starts."""

    created_at_ms: int
    id: int


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_cursor: PageCursor | None


@dataclass(frozen=True, slots=True)
class StateOrFlags:
    """Matches an attempt that is in one of `states` or carries any of `flags` (the manager's
    problem categories: "failed or late" is one such filter)."""

    states: frozenset[AttemptState] = frozenset()
    flags: AttemptFlag = AttemptFlag.NONE


@dataclass(frozen=True, slots=True)
class AttemptFilter:
    """Filters for the history and problem-payments lists; every field narrows."""

    since: datetime | None = None
    until: datetime | None = None
    states: frozenset[AttemptState] | None = None
    result_codes: frozenset[str] | None = None
    phone: str | None = None
    till_id: str | None = None
    include_resolved: bool = False
    any_of: StateOrFlags | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals over a period for one shop (the daily summary screen)."""

    attempts: int
    paid: int
    amount_paid: int
    failed: int
    failures_by_code: Mapping[str, int]
    average_seconds_to_pay: float | None
    by_state: Mapping[AttemptState, int] = field(default_factory=dict)
    sales: int = 0
    """Sales (a sale is every attempt with one sale reference) begun in the period."""
    sales_paid: int = 0
    """Sales with a COMPLETED attempt."""
    sales_not_paid: int = 0
    """Sales whose every attempt reached a final state and none is COMPLETED."""
    reversed: int = 0
    """Paid attempts whose money M-Pesa reversed (still counted in `paid`)."""
    amount_reversed: int = 0
    """Whole shillings of those: `amount_paid` minus this is what the till kept."""

    @property
    def failure_rate(self) -> float:
        """Failed attempts over attempts that reached a final state."""
        finished = sum(n for state, n in self.by_state.items() if state in FINAL)
        return self.failed / finished if finished else 0.0

    @property
    def sale_failure_rate(self) -> float:
        """Sales not paid over sales that are settled (paid or finished unpaid): retries and
        Daraja's code-17 refusals do not inflate it."""
        settled = self.sales_paid + self.sales_not_paid
        return self.sales_not_paid / settled if settled else 0.0


@dataclass(frozen=True, slots=True)
class Problem:
    id: int
    shop_id: str
    till_id: str | None
    kind: ProblemKind
    detail: Mapping[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    resolution_note: str | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    shop_id: str | None
    actor: Actor
    action: str
    attempt_id: int | None
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str


class ChainState(StrEnum):
    """What `verify chain` found: which kind of tampering, if any."""

    INTACT = "intact"
    EDITED = "edited"
    """An entry was changed or removed (or the head record edited) without redoing the chain."""
    TRUNCATED = "truncated"
    """Entries are gone from the end of the log."""
    REWRITTEN = "rewritten"
    """The chain was recomputed from some entry on by someone without the till's key."""


@dataclass(frozen=True, slots=True)
class ChainCheckpoint:
    """A chain head kept off the till (by the relay): entry `seq` had hash `head`."""

    seq: int
    head: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The audit chain's state: intact, or the id of the first entry that is wrong or missing.

    `unkeyed` counts the entries at the start that were written without the vault key (before
    the chain was keyed); they are checked by their unkeyed hashes only."""

    intact: bool
    entries: int
    first_broken_id: int | None = None
    reason: str | None = None
    state: ChainState = ChainState.INTACT
    unkeyed: int = 0
    checkpoint: ChainCheckpoint | None = None
