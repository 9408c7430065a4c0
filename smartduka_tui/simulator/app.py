"""The simulator's Starlette app: Daraja's endpoints plus the control API under `/__sim/`.

Handlers stay thin: Daraja requests go to `Simulator.handle`, control requests are validated
with the pydantic shapes in `schemas.py` and passed to the engine. Every refused control request
gets a 4xx JSON body `{"error": "...", "details": [...]}` and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from smartduka_tui.clock import Clock
from smartduka_tui.simulator import codes
from smartduka_tui.simulator.engine import (
    DarajaRequest,
    InvalidControlRequest,
    Simulator,
    SimulatorConfig,
)
from smartduka_tui.simulator.records import LogFilter
from smartduka_tui.simulator.replies import ControlError
from smartduka_tui.simulator.schemas import (
    AdvanceRequest,
    AppRegistration,
    PhoneScenario,
    ResolveRequest,
    ShortcodeRegistration,
    check_phone,
    check_shortcode,
)
from smartduka_tui.simulator.statement_schemas import (
    AsyncResultScenario,
    C2BPaymentRequest,
    InitiatorRegistration,
    NoticeKind,
)

DARAJA_BODY_LIMIT = 64 * 1024
CONTROL_BODY_LIMIT = 256 * 1024
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_Model = TypeVar("_Model", bound=BaseModel)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (whatever Content-Length claims)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _disconnect_waiter(request: Request) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            continue

    return wait


def _json(model: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> JSONResponse:
    if isinstance(model, BaseModel):
        return JSONResponse(model.model_dump(mode="json"), status_code=status)
    return JSONResponse(model, status_code=status)


def _dump(models: list[_Model]) -> list[Any]:
    return [m.model_dump(mode="json") for m in models]


def _error(status: int, message: str, details: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "details": details or []}, status_code=status)


class _ControlApi:
    """Endpoints of `/__sim/`. Each returns JSON; `ControlError` becomes a 4xx answer."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator

    async def _body(self, request: Request, model: type[_Model]) -> _Model:
        try:
            return model.model_validate(await self._raw_object(request))
        except ValidationError as exc:
            raise InvalidControlRequest.from_validation(exc) from None

    async def _raw_object(self, request: Request) -> dict[str, Any]:
        raw = await _read_limited(request, CONTROL_BODY_LIMIT)
        if raw is None:
            raise ControlError(413, f"request body is larger than {CONTROL_BODY_LIMIT} bytes")
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            raise ControlError(400, "request body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise ControlError(400, "request body must be a JSON object")
        return parsed

    @staticmethod
    def _checked(request: Request, name: str, check: Callable[[str], str]) -> str:
        """The path parameter `name` as `check` accepts it, or a 422 saying why not."""
        try:
            return check(str(request.path_params[name]))
        except ValueError as exc:
            raise ControlError(422, str(exc)) from None

    def _phone(self, request: Request) -> str:
        return self._checked(request, "phone", check_phone)

    def _shortcode(self, request: Request) -> str:
        return self._checked(request, "shortcode", check_shortcode)

    @staticmethod
    def _filters(request: Request) -> LogFilter:
        """Query filters shared by the log and transaction listings."""
        params = request.query_params
        unknown = set(params) - {"phone", "shortcode", "checkout_request_id", "since", "limit"}
        if unknown:
            raise ControlError(422, f"unknown filter(s): {', '.join(sorted(unknown))}")
        filters: dict[str, Any] = {
            "phone": params.get("phone"),
            "shortcode": params.get("shortcode"),
            "checkout_request_id": params.get("checkout_request_id"),
        }
        for name, low, high in (("since", 0, 2**62), ("limit", 1, 10_000)):
            if name in params:
                text = params[name]
                if not text.isdigit() or not low <= int(text) <= high:
                    raise ControlError(422, f"{name} must be a whole number from {low} to {high}")
                filters[name] = int(text)
        return LogFilter(**filters)

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok", **self.sim.clock_view().model_dump(mode="json")})

    async def clock(self, request: Request) -> Response:
        return _json(self.sim.clock_view())

    async def advance(self, request: Request) -> Response:
        body = await self._body(request, AdvanceRequest)
        return _json(await self.sim.advance(body.seconds))

    async def settings(self, request: Request) -> Response:
        if request.method == "PATCH":
            return _json(self.sim.update_settings(await self._raw_object(request)))
        if request.method == "DELETE":
            return _json(self.sim.reset_settings())
        return _json(self.sim.settings)

    async def apps(self, request: Request) -> Response:
        if request.method == "PUT":
            return _json(self.sim.upsert_app(await self._body(request, AppRegistration)))
        return _json({"apps": _dump(self.sim.apps())})

    async def shortcodes(self, request: Request) -> Response:
        if request.method == "POST":
            registration = await self._body(request, ShortcodeRegistration)
            return _json(self.sim.register_shortcode(registration), status=201)
        return _json({"shortcodes": _dump(self.sim.shortcodes())})

    async def shortcode(self, request: Request) -> Response:
        shortcode = self._shortcode(request)
        if request.method == "PUT":
            registration = await self._body(request, ShortcodeRegistration)
            return _json(self.sim.register_shortcode(registration, shortcode=shortcode))
        if request.method == "DELETE":
            return _json({"cancelled_transactions": self.sim.delete_shortcode(shortcode)})
        return _json(self.sim.shortcode_view(self.sim.registered_merchant(shortcode)))

    async def reset_shortcode(self, request: Request) -> Response:
        shortcode = self._shortcode(request)
        return _json({"cancelled_transactions": self.sim.reset_shortcode(shortcode)})

    async def scenario(self, request: Request) -> Response:
        phone = self._phone(request)
        if request.method == "PUT":
            scenario = await self._body(request, PhoneScenario)
            self.sim.set_scenario(phone, scenario)
        elif request.method == "DELETE":
            self.sim.clear_scenario(phone)
        scenario, source = self.sim.scenario_for(phone)
        return _json(
            {"phone": phone, "source": source, "scenario": scenario.model_dump(mode="json")}
        )

    async def magic(self, request: Request) -> Response:
        return _json(
            {
                "magic": [
                    {
                        "phone": m.phone,
                        "summary": m.summary,
                        "scenario": m.scenario.model_dump(mode="json"),
                    }
                    for m in codes.MAGIC_PHONES.values()
                ]
            }
        )

    async def requests(self, request: Request) -> Response:
        return _json({"requests": _dump(self.sim.requests(self._filters(request)))})

    async def callbacks(self, request: Request) -> Response:
        return _json({"callbacks": _dump(self.sim.callbacks(self._filters(request)))})

    async def transactions(self, request: Request) -> Response:
        return _json({"transactions": _dump(self.sim.transactions(self._filters(request)))})

    async def resolve(self, request: Request) -> Response:
        body = await self._body(request, ResolveRequest)
        checkout_id = str(request.path_params["checkout_request_id"])
        return _json(self.sim.resolve(checkout_id, body))

    def _registered(self, request: Request) -> str:
        shortcode = self._shortcode(request)
        self.sim.registered_merchant(shortcode)
        return shortcode

    async def certificate(self, request: Request) -> Response:
        pem = self.sim.statement.authority.certificate_pem().decode("ascii")
        return _json({"certificate": pem})

    async def initiator(self, request: Request) -> Response:
        shortcode = self._registered(request)
        registration = await self._body(request, InitiatorRegistration)
        self.sim.statement.set_initiator(shortcode, registration)
        return _json({"shortcode": shortcode, "initiator": registration.name})

    async def async_results(self, request: Request) -> Response:
        shortcode = self._registered(request)
        if request.method == "PUT":
            scenario = await self._body(request, AsyncResultScenario)
            return _json(self.sim.statement.set_scenario(shortcode, scenario))
        return _json(self.sim.statement.ledger(shortcode).scenario)

    async def c2b_payments(self, request: Request) -> Response:
        shortcode = self._registered(request)
        if request.method == "POST":
            payment = await self._body(request, C2BPaymentRequest)
            merchant = self.sim.registered_merchant(shortcode)
            return _json(await self.sim.statement.pay(merchant, payment), status=201)
        return _json({"payments": _dump(self.sim.statement.payments(shortcode))})

    async def notices(self, request: Request) -> Response:
        params = request.query_params
        unknown = set(params) - {"shortcode", "kind"}
        if unknown:
            raise ControlError(422, f"unknown filter(s): {', '.join(sorted(unknown))}")
        kind_text = params.get("kind")
        try:
            kind = None if kind_text is None else NoticeKind(kind_text)
        except ValueError:
            names = ", ".join(k.value for k in NoticeKind)
            raise ControlError(422, f"kind must be one of {names}") from None
        found = self.sim.statement.notices(params.get("shortcode"), kind)
        return _json({"notices": _dump(found)})

    def routes(self) -> list[Route]:
        def route(
            path: str, endpoint: Callable[[Request], Awaitable[Response]], *methods: str
        ) -> Route:
            return Route(path, self._guarded(endpoint), methods=list(methods))

        return [
            route("/health", self.health, "GET"),
            route("/clock", self.clock, "GET"),
            route("/clock/advance", self.advance, "POST"),
            route("/settings", self.settings, "GET", "PATCH", "DELETE"),
            route("/apps", self.apps, "GET", "PUT"),
            route("/shortcodes", self.shortcodes, "GET", "POST"),
            route("/shortcodes/{shortcode}", self.shortcode, "GET", "PUT", "DELETE"),
            route("/shortcodes/{shortcode}/reset", self.reset_shortcode, "POST"),
            route("/phones/{phone}/scenario", self.scenario, "GET", "PUT", "DELETE"),
            route("/magic", self.magic, "GET"),
            route("/requests", self.requests, "GET"),
            route("/callbacks", self.callbacks, "GET"),
            route("/transactions", self.transactions, "GET"),
            route("/transactions/{checkout_request_id}/resolve", self.resolve, "POST"),
            route("/certificate", self.certificate, "GET"),
            route("/shortcodes/{shortcode}/initiators", self.initiator, "PUT"),
            route("/shortcodes/{shortcode}/async-results", self.async_results, "GET", "PUT"),
            route("/shortcodes/{shortcode}/c2b/payments", self.c2b_payments, "GET", "POST"),
            route("/notices", self.notices, "GET"),
        ]

    @staticmethod
    def _guarded(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except InvalidControlRequest as exc:
                return _error(exc.status, exc.message, exc.details)
            except ControlError as exc:
                return _error(exc.status, exc.message)

        return guarded


def _http_error(request: Request, exc: Exception) -> Response:
    """Control paths answer routing errors in JSON; nothing else reaches here."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error(405, f"{request.method} is not allowed on {request.url.path}")
    if exc.status_code == 404:
        return _error(404, f"no control endpoint at {request.url.path}")
    return _error(exc.status_code, str(exc.detail))


def create_app(config: SimulatorConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """The simulator as an ASGI app; `app.state.simulator` is its engine."""
    simulator = Simulator(config, clock=clock)
    control = _ControlApi(simulator)

    async def daraja(request: Request) -> Response:
        body = await _read_limited(request, DARAJA_BODY_LIMIT)
        reply = await simulator.handle(
            DarajaRequest(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                authorization=request.headers.get("authorization"),
                content_type=request.headers.get("content-type"),
                body=body or b"",
                body_too_large=body is None,
                wait_disconnect=_disconnect_waiter(request),
            )
        )
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await simulator.start()
        try:
            yield
        finally:
            await simulator.aclose()

    app = Starlette(
        routes=[
            Mount("/__sim", routes=control.routes()),
            Route("/{path:path}", daraja, methods=_ALL_METHODS),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.simulator = simulator
    return app
