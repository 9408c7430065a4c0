"""A small typed async client for the simulator's control API (`/__sim/`).

Used by the engine, relay, demo and UI tests, and by `smartduka-sim`'s headless subcommands::

    async with SimulatorControl("http://127.0.0.1:8089") as sim:
        shop = await sim.register_shortcode(passkey=..., consumer_key=..., consumer_secret=...)
        await sim.set_phone_scenario("254712345678", result_code=1032, duplicates=1)
        await sim.advance_clock(2)
        sent = await sim.callbacks(phone="254712345678")

Depends only on httpx and pydantic (no Starlette), so importing it is cheap.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, TypedDict, TypeVar, Unpack

import httpx
from pydantic import BaseModel

from smartduka_tui.simulator.schemas import (
    AdvanceResult,
    AppView,
    CallbackDelivery,
    ClockView,
    ExpiresInType,
    PhoneScenario,
    RequestLogEntry,
    ShortcodeKind,
    ShortcodeView,
    SimSettings,
    TransactionView,
)
from smartduka_tui.simulator.statement_schemas import (
    AsyncResultScenario,
    C2BPaymentView,
    NoticeDelivery,
    NoticeKind,
)

_Model = TypeVar("_Model", bound=BaseModel)


class Filters(TypedDict, total=False):
    """What a listing of transactions may be narrowed to (each one given must match)."""

    phone: str | None
    shortcode: str | None
    checkout_request_id: str | None


class LogFilters(Filters, total=False):
    """... and a log listing: entries after the seq `since`, at most `limit` of them."""

    since: int | None
    limit: int | None


class SimulatorControlError(Exception):
    """The simulator refused a control request; `message` is its explanation."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(f"simulator answered {status}: {message}")
        self.status = status
        self.message = message
        self.details = details


class SimulatorControl:
    """Talks to one running simulator. Pass `transport` (e.g. `httpx.ASGITransport(app)`) to
    drive an in-process app instead of a server."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/__sim",
            timeout=timeout,
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self._client.request(method, path, json=json, params=query)
        if response.status_code >= 400:
            try:
                body = response.json()
                message, details = str(body["error"]), list(body.get("details", []))
            except (ValueError, KeyError, TypeError):
                message, details = response.text[:200], []
            raise SimulatorControlError(response.status_code, message, details)
        return response.json()

    async def _model(self, model: type[_Model], method: str, path: str, **kwargs: Any) -> _Model:
        return model.model_validate(await self._call(method, path, **kwargs))

    async def _listing(
        self, model: type[_Model], path: str, key: str, **filters: Any
    ) -> list[_Model]:
        """The list under `key` that `GET path` answers with the filters given (None ones left
        out), as `model`s."""
        found = await self._call("GET", path, params=filters)
        return [model.model_validate(item) for item in found[key]]

    # ----------------------------------------------------------------- health and clock

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/health")
        return result

    async def clock(self) -> ClockView:
        return await self._model(ClockView, "GET", "/clock")

    async def advance_clock(self, seconds: float) -> AdvanceResult:
        """Move simulator time forward; returns once every callback now due was delivered."""
        return await self._model(AdvanceResult, "POST", "/clock/advance", json={"seconds": seconds})

    # ----------------------------------------------------------------- settings

    async def settings(self) -> SimSettings:
        return await self._model(SimSettings, "GET", "/settings")

    async def update_settings(self, **changes: Any) -> SimSettings:
        """Change global defaults (see `SimSettings`); unknown names are refused."""
        return await self._model(SimSettings, "PATCH", "/settings", json=changes)

    async def reset_settings(self) -> SimSettings:
        return await self._model(SimSettings, "DELETE", "/settings")

    # ----------------------------------------------------------------- apps and shortcodes

    async def set_app(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        token_lifetime_s: int | None = None,
        revoke_old_token: bool | None = None,
        expires_in_type: ExpiresInType | None = None,
    ) -> AppView:
        """Create or update a consumer app and its token settings (None: the global default)."""
        body: dict[str, Any] = {
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "token_lifetime_s": token_lifetime_s,
            "revoke_old_token": revoke_old_token,
            "expires_in_type": None if expires_in_type is None else expires_in_type.value,
        }
        return await self._model(AppView, "PUT", "/apps", json=body)

    async def register_shortcode(
        self,
        shortcode: str | None = None,
        *,
        passkey: str,
        consumer_key: str,
        consumer_secret: str,
        kind: ShortcodeKind = ShortcodeKind.PAYBILL,
        till_numbers: list[str] | None = None,
        shared: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> ShortcodeView:
        """Register (or replace) a shortcode. Without `shortcode` the simulator picks an unused
        one; a till without `till_numbers` gets one picked. `settings` overrides
        `MerchantSettings` for this shortcode only."""
        body: dict[str, Any] = {
            "passkey": passkey,
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "kind": kind.value,
            "till_numbers": till_numbers or [],
            "shared": shared,
            "settings": settings or {},
        }
        if shortcode is None:
            return await self._model(ShortcodeView, "POST", "/shortcodes", json=body)
        return await self._model(ShortcodeView, "PUT", f"/shortcodes/{shortcode}", json=body)

    async def shortcodes(self) -> list[ShortcodeView]:
        return await self._listing(ShortcodeView, "/shortcodes", "shortcodes")

    async def reset_shortcode(self, shortcode: str) -> int:
        """Forget the shortcode's transactions and counters; returns how many were dropped."""
        found = await self._call("POST", f"/shortcodes/{shortcode}/reset")
        return int(found["cancelled_transactions"])

    async def delete_shortcode(self, shortcode: str) -> int:
        found = await self._call("DELETE", f"/shortcodes/{shortcode}")
        return int(found["cancelled_transactions"])

    # ----------------------------------------------------------------- phones

    async def set_phone_scenario(
        self, phone: str, scenario: PhoneScenario | None = None, **fields: Any
    ) -> PhoneScenario:
        """Script what `phone` does with the next pushes: pass a `PhoneScenario` or its fields
        (result_code, callback_delay_s, drop_callback, duplicates, late_callback_s,
        callback_before_response, unanswered, push_anomaly, query_anomaly, ...)."""
        if scenario is not None and fields:
            raise TypeError("pass a PhoneScenario or its fields, not both")
        chosen = scenario if scenario is not None else PhoneScenario(**fields)
        found = await self._call(
            "PUT", f"/phones/{phone}/scenario", json=chosen.model_dump(mode="json")
        )
        return PhoneScenario.model_validate(found["scenario"])

    async def phone_scenario(self, phone: str) -> tuple[PhoneScenario, str]:
        """The scenario a push to `phone` takes and its source: scripted, magic or default."""
        found = await self._call("GET", f"/phones/{phone}/scenario")
        return PhoneScenario.model_validate(found["scenario"]), str(found["source"])

    async def clear_phone_scenario(self, phone: str) -> None:
        await self._call("DELETE", f"/phones/{phone}/scenario")

    # ----------------------------------------------------------------- logs and ground truth

    async def requests(self, **filters: Unpack[LogFilters]) -> list[RequestLogEntry]:
        """Daraja requests received (secrets redacted), oldest first."""
        return await self._listing(RequestLogEntry, "/requests", "requests", **filters)

    async def callbacks(self, **filters: Unpack[LogFilters]) -> list[CallbackDelivery]:
        """Callback deliveries made, oldest first, with their HTTP status or error."""
        return await self._listing(CallbackDelivery, "/callbacks", "callbacks", **filters)

    async def transactions(self, **filters: Unpack[Filters]) -> list[TransactionView]:
        """The simulator's ground truth for accepted pushes."""
        return await self._listing(TransactionView, "/transactions", "transactions", **filters)

    async def resolve(
        self, checkout_request_id: str, result_code: int | str = 0, result_desc: str | None = None
    ) -> TransactionView:
        """Answer a pending prompt now, as the customer would."""
        body: dict[str, Any] = {"result_code": result_code, "result_desc": result_desc}
        return await self._model(
            TransactionView, "POST", f"/transactions/{checkout_request_id}/resolve", json=body
        )

    # ----------------------------------------------------------------- statement APIs

    async def certificate(self) -> bytes:
        """The simulator's public certificate (PEM): encrypt initiator passwords with it."""
        found = await self._call("GET", "/certificate")
        return str(found["certificate"]).encode("ascii")

    async def set_initiator(self, shortcode: str, name: str, password: str) -> None:
        """Create or replace an API operator of `shortcode` (for Transaction Status and
        Reversal)."""
        await self._call(
            "PUT",
            f"/shortcodes/{shortcode}/initiators",
            json={"name": name, "password": password},
        )

    async def set_async_results(
        self, shortcode: str, scenario: AsyncResultScenario | None = None, **fields: Any
    ) -> AsyncResultScenario:
        """How the shortcode's next notices travel: delay_s, drop, duplicates, timeout,
        result_code, times (see `AsyncResultScenario`)."""
        if scenario is not None and fields:
            raise TypeError("pass an AsyncResultScenario or its fields, not both")
        chosen = scenario if scenario is not None else AsyncResultScenario(**fields)
        return await self._model(
            AsyncResultScenario,
            "PUT",
            f"/shortcodes/{shortcode}/async-results",
            json=chosen.model_dump(mode="json"),
        )

    async def pay_till(
        self,
        shortcode: str,
        phone: str,
        amount: str | int,
        *,
        first_name: str = "JOHN",
        bill_ref_number: str = "",
        qr_request_id: str | None = None,
    ) -> C2BPaymentView:
        """A phone pays the shortcode directly (a C2B payment): external validation if on,
        then the confirmation to the registered URL, as the shortcode's async scenario says."""
        body: dict[str, Any] = {
            "phone": phone,
            "amount": str(amount),
            "first_name": first_name,
            "bill_ref_number": bill_ref_number,
            "qr_request_id": qr_request_id,
        }
        return await self._model(
            C2BPaymentView, "POST", f"/shortcodes/{shortcode}/c2b/payments", json=body
        )

    async def c2b_payments(self, shortcode: str) -> list[C2BPaymentView]:
        path = f"/shortcodes/{shortcode}/c2b/payments"
        return await self._listing(C2BPaymentView, path, "payments")

    async def notices(
        self, *, shortcode: str | None = None, kind: NoticeKind | None = None
    ) -> list[NoticeDelivery]:
        """Asynchronous POSTs made (C2B validation and confirmation, results, timeouts)."""
        return await self._listing(
            NoticeDelivery,
            "/notices",
            "notices",
            shortcode=shortcode,
            kind=None if kind is None else kind.value,
        )
