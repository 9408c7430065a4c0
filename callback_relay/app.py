"""The relay's Starlette app: routes, lifespan (store, caches, background tasks), thin handlers.

`make_app(settings)` is the one factory, used by `smartduka-relay serve` and by every test. The
route table is a plain list so later features (the Daraja broker) add their routes beside these.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from callback_relay.broker import BROKER_ROUTES, Broker, close_broker
from callback_relay.c2b import C2B_ROUTES, C2BIntake
from callback_relay.checkpoints import Checkpoints
from callback_relay.feed import Feed
from callback_relay.hub import FeedHub
from callback_relay.intake import CallbackIntake
from callback_relay.metrics import RelayMetrics
from callback_relay.receipts import RECEIPT_ROUTES, ReceiptIndex
from callback_relay.registry import SecretCache, now_ms, open_box
from callback_relay.results import RESULT_ROUTES, ResultIntake
from callback_relay.routing import on_state
from callback_relay.settings import RelaySettings
from callback_relay.sources import client_address, in_networks
from callback_relay.store import RelayStore, StoreUnavailable
from callback_relay.stores import store_for
from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.mpesa import callback_path
from smartduka_tui.secretbox import SecretBox

log = logging.getLogger("callback_relay")


@dataclass(slots=True)
class Relay:
    """The services one running app holds; created in the lifespan."""

    settings: RelaySettings
    store: RelayStore
    cache: SecretCache
    hub: FeedHub
    metrics: RelayMetrics
    clock: Clock
    intake: CallbackIntake
    feed: Feed
    checkpoints: Checkpoints


def _relay(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


class _ReceiveCallback:
    """The callback route's endpoint, a raw ASGI app (an instance, so Starlette's Route passes it
    the scope as it is): the intake reads and answers the hot path without a Request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay: Relay = scope["app"].state.relay
        await relay.intake(scope, receive, send)


receive_callback = _ReceiveCallback()


class _CallbacksFirst:
    """Hands the hook's POSTs to the intake before routing; everything else goes on to `app`.

    A callback is the relay's one hot path, and the exception middleware, the router's walk
    and the route's method check cost it more than its signature check does. The route stays
    in `ROUTES` (it lists the hook and answers 405 to other methods); an error in the intake
    still reaches Starlette's outermost middleware, which answers 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(callback_path.PREFIX)
        ):
            relay: Relay = scope["app"].state.relay
            await relay.intake(scope, receive, send)
        else:
            await self._app(scope, receive, send)


async def healthz(request: Request) -> Response:
    try:
        # A store that reads but cannot write (locked, full, read-only) cannot take callbacks.
        await _relay(request).store.check_writable()
    except StoreUnavailable:
        return JSONResponse({"status": "store unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


def metrics_allowed(request: Request, settings: RelaySettings) -> bool:
    token = settings.metrics_token
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if token is not None and scheme.lower() == "bearer":
        expected = token.get_secret_value().encode()
        if hmac.compare_digest(presented.strip().encode(), expected):
            return True
    client = request.scope.get("client")
    source = client_address(
        client[0] if client else None,
        request.headers.getlist("x-forwarded-for"),
        settings.trusted_proxies,
    )
    return in_networks(source, settings.metrics_allow)


async def metrics(request: Request) -> Response:
    relay = _relay(request)
    if not metrics_allowed(request, relay.settings):
        return JSONResponse({"error": "forbidden"}, status_code=403)
    try:
        relay.metrics.set_inbox(await relay.store.inbox_stats(), now_ms(relay.clock))
    except StoreUnavailable:
        relay.metrics.store_failures.inc()
    return Response(relay.metrics.render(), media_type="text/plain; version=0.0.4")


ROUTES: list[Route] = [
    Route("/hooks/stk/{rest:path}", receive_callback, methods=["POST"]),
    Route("/v1/events", on_state("feed", Feed.events), methods=["GET"]),
    Route("/v1/events/{event_id}/ack", on_state("feed", Feed.ack), methods=["POST"]),
    Route("/v1/audit/checkpoint", on_state("checkpoints", Checkpoints.get), methods=["GET"]),
    Route("/v1/audit/checkpoint", on_state("checkpoints", Checkpoints.put), methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    *BROKER_ROUTES,
    *RESULT_ROUTES,
    *C2B_ROUTES,
    *RECEIPT_ROUTES,
]


async def _every(
    name: str, clock: Clock, interval: float, job: Callable[[], Awaitable[Any]]
) -> None:
    """Run `job` every `interval` seconds of `clock`; failures are logged, never fatal."""
    while True:
        await clock.sleep(interval)
        try:
            await job()
        except StoreUnavailable:
            log.error("%s skipped: the store is unavailable", name)
        except Exception:
            log.exception("%s failed", name)


# The young generation's size while serving, against Python's 700: see `_collector_for_serving`.
_SERVING_GC_THRESHOLD = 5000


@contextlib.contextmanager
def _collector_for_serving() -> Iterator[None]:
    """While the app serves: what was loaded at startup is frozen out of collections, and the
    young generation is collected after 5,000 allocations rather than 700.

    Measured under the bench's load: at Python's defaults a callback cost about 15 us of
    collector time (a young collection every ~25 callbacks, each rescanning the in-flight ones,
    and full passes over the startup heap of 60,000 objects, one of them a ~35 ms pause), about
    4 us with both changes. The hot path makes no cyclic garbage, so collecting less often holds
    no more memory. Both are undone when the app stops (a test process starts many apps).
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], _SERVING_GC_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def make_app(
    settings: RelaySettings,
    *,
    clock: Clock | None = None,
    store: RelayStore | None = None,
) -> Starlette:
    """The relay app. `store` defaults to the one the settings select; `clock` to the real one."""
    the_clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store or store_for(settings)
        await the_store.open()

        async def load_box() -> SecretBox | None:
            return await open_box(the_store, settings.db, settings.env_key(), create=False)

        cache = SecretCache(the_store, load_box)
        metrics_ = RelayMetrics()
        hub = FeedHub()
        # A shared store: commits on other instances wake this instance's long-polls too.
        the_store.subscribe(hub.notify)
        feed = Feed(settings, the_store, hub, metrics_, the_clock)
        relay = Relay(
            settings=settings,
            store=the_store,
            cache=cache,
            hub=hub,
            metrics=metrics_,
            clock=the_clock,
            intake=CallbackIntake(settings, the_store, cache, hub, metrics_, the_clock),
            feed=feed,
            checkpoints=Checkpoints(settings, the_store, feed, the_clock),
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await cache.load()
            retention_ms = int(settings.retention_days * 86_400_000)
            jobs: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = [
                ("registry refresh", settings.registry_refresh_s, cache.refresh_if_changed),
                (
                    "dead-letter sweep",
                    settings.sweep_interval_s,
                    lambda: the_store.sweep(now_ms(the_clock), settings.max_deliveries),
                ),
                (
                    "retention prune",
                    settings.prune_interval_s,
                    lambda: the_store.prune(now_ms(the_clock) - retention_ms),
                ),
            ]
            tasks = [
                asyncio.create_task(_every(name, the_clock, interval, job), name=name)
                for name, interval, job in jobs
            ]
            log.info("relay ready (%s mode)", settings.mode.value)
            app.state.relay = relay
            app.state.feed = feed
            app.state.checkpoints = relay.checkpoints
            app.state.broker = Broker(relay)
            app.state.results = ResultIntake(settings, the_store, cache, hub, metrics_, the_clock)
            app.state.c2b = C2BIntake(settings, the_store, cache, hub, metrics_, the_clock, feed)
            app.state.receipts = ReceiptIndex(settings, the_store, the_clock, feed)
            with _collector_for_serving():
                yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await close_broker(app.state)
            await the_store.close()

    return Starlette(
        routes=list(ROUTES), middleware=[Middleware(_CallbacksFirst)], lifespan=lifespan
    )
