"""Fixtures for the manager tools: a real till database with a fixed story in it.

`seeded_till` opens a real SQLite store in tmp_path on a ManualClock, adds shop `duka1` with
till `till1`, and drives a handful of attempts through the store's own transitions (with the
audit details the engine writes), plus two problem records. Every time and id is fixed, so the
screens it feeds render the same frame on every run (snapshot tests rely on it). A real
`PaymentEngine` sits on top for the app; its Daraja is a closed loopback port, so nothing is
ever sent from these fixtures (tests that talk to M-Pesa use the real simulator instead).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot

from smartduka_tui.clock import ManualClock
from smartduka_tui.config import Settings
from smartduka_tui.connectivity import ConnectionBoard, ConnectionState, Reachability
from smartduka_tui.manager import ManagerService
from smartduka_tui.model import Actor, AttemptFlag, AttemptState, AuditAction, ProblemKind, ShopType
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.store import (
    Attempt,
    Enrolment,
    NewAttempt,
    Secret,
    ShopConfig,
    ShopSecrets,
    Store,
    create_keyring,
    keyring_path,
)
from smartduka_tui.store.pin import ManagerPin
from smartduka_tui.till import open_till
from smartduka_tui.ui.app import SmartDukaApp, make_app
from smartduka_tui.ui.services import AppServices, TillIdentity, UiOptions
from tests.store.conftest import no_canary_on_disk  # noqa: F401 - the end-of-session scan

SHOP = "duka1"
TILL = "till1"
PIN = "2580"
# 09:00 in Nairobi on a Thursday.
START = datetime(2026, 1, 15, 6, 0, 0, tzinfo=UTC)
SIZE = (80, 24)
ONLINE = ConnectionState(daraja=Reachability.REACHABLE, relay=Reachability.REACHABLE)
# Fixed, obviously fake credentials for frames that must not change between runs.
FIXED_SECRETS = ("DemoConsumerKey0001", "DemoConsumerSecret0002", "DemoPasskey0000000000003")
CLOSED_PORT_URL = "http://127.0.0.1:9"


@dataclass
class Seeded:
    """A till database with the story below, its engine and a manager service."""

    data_dir: Path
    settings: Settings
    clock: ManualClock
    store: Store
    engine: PaymentEngine
    service: ManagerService
    ids: dict[str, int]
    problem_ids: dict[str, int]
    secrets: tuple[str, str, str]


def make_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        shop_id=SHOP,
        daraja={"base_url": CLOSED_PORT_URL, "connect_timeout_s": 1.0, "read_timeout_s": 1.0},
        relay={"url": CLOSED_PORT_URL},
        **extra,
    )


async def add_shop(store: Store, shop_secrets: tuple[str, str, str]) -> None:
    key, secret, passkey = shop_secrets
    async with store.write() as tx:
        await store.shops.add(
            tx,
            ShopConfig(SHOP, "Mama Duka", ShopType.PAYBILL, "MD", "600100"),
            ShopSecrets(Secret(key), Secret(secret), Secret(passkey)),
        )
        await store.tills.enrol(
            tx,
            Enrolment(
                SHOP,
                TILL,
                CLOSED_PORT_URL,
                Secret("till-key-" + "x" * 24),
                "k1",
                Secret("c2VjcmV0LWNhbGxiYWNrLWtleS0xMjM0NTY3ODkwYWI"),
            ),
        )


class Story:
    """Writes attempts the way the engine does: each step a transition with its evidence."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        self.store = store
        self.clock = clock
        self.count = 0

    async def attempt(self, sale: str, amount: int, phone: str) -> Attempt:
        self.count += 1
        async with self.store.write() as tx:
            return await self.store.attempts.create(
                tx,
                NewAttempt(
                    shop_id=SHOP,
                    till_id=TILL,
                    sale_ref=sale,
                    amount=amount,
                    phone=phone,
                    idempotency_key=f"key-{sale}-{self.count}",
                    attempt_ref=f"ref{self.count:04d}",
                    expires_at=self.clock.now() + timedelta(minutes=5),
                ),
                actor=Actor.CASHIER,
            )

    async def move(
        self,
        attempt: Attempt,
        to: AttemptState,
        cause: Actor,
        evidence: str,
        *,
        after_s: float = 1,
        flags: AttemptFlag = AttemptFlag.NONE,
        extra: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Attempt:
        self.clock.advance(after_s)
        async with self.store.write() as tx:
            result = await self.store.attempts.transition(
                tx,
                SHOP,
                attempt.id,
                {attempt.state},
                to,
                cause,
                add_flags=flags,
                detail={"evidence": evidence, "cause": cause.value, **(extra or {})},
                **fields,
            )
        assert result.applied
        return result.attempt

    async def accepted(self, attempt: Attempt, checkout: str) -> Attempt:
        return await self.move(
            attempt,
            AttemptState.PENDING,
            Actor.SYSTEM,
            "push_accepted",
            push_sent_at=self.clock.now(),
            checkout_request_id=checkout,
            merchant_request_id="m-" + checkout,
        )

    async def note(self, attempt: Attempt, evidence: str, **detail: Any) -> None:
        async with self.store.write() as tx:
            await self.store.audit.append(
                tx,
                actor=Actor.QUERY,
                action=AuditAction.EVIDENCE_NO_CHANGE,
                shop_id=SHOP,
                attempt_id=attempt.id,
                detail={"evidence": evidence, "state": attempt.state.value, **detail},
            )


async def tell_story(store: Store, clock: ManualClock) -> tuple[dict[str, int], dict[str, int]]:
    """The fixed data every manager test reads. Returns attempt ids and problem ids by name."""
    story = Story(store, clock)
    ids: dict[str, int] = {}

    paid = await story.accepted(await story.attempt("S1001", 250, "254712000001"), "ws_CO_1")
    paid = await story.move(
        paid,
        AttemptState.COMPLETED,
        Actor.CALLBACK,
        "callback_success",
        after_s=18,
        result_code="0",
        result_desc="The service request is processed successfully.",
        receipt_number="SDK1A2B3C4",
    )
    ids["paid"] = paid.id

    clock.advance(60)
    cancelled = await story.accepted(await story.attempt("S1002", 120, "254712000002"), "ws_CO_2")
    cancelled = await story.move(
        cancelled,
        AttemptState.FAILED,
        Actor.CALLBACK,
        "callback_failure",
        after_s=9,
        extra={"callback_code": "1032"},
        result_code="1032",
        result_desc="Request cancelled by user",
    )
    ids["cancelled"] = cancelled.id

    clock.advance(60)
    expired = await story.accepted(await story.attempt("S1003", 480, "254712000003"), "ws_CO_3")
    clock.advance(300)
    await story.note(expired, "query_inconclusive", query_code=None, query="pending")
    expired = await story.move(expired, AttemptState.EXPIRED, Actor.EXPIRY, "expiry")
    ids["expired"] = expired.id

    clock.advance(60)
    review = await story.accepted(await story.attempt("S1004", 1000, "254712000004"), "ws_CO_4")
    review = await story.move(
        review,
        AttemptState.NEEDS_REVIEW,
        Actor.CALLBACK,
        "callback_suspect",
        after_s=12,
        extra={"callback_code": "0", "review_reason": "amount differs from the attempt's"},
        result_code="0",
        result_desc="The service request is processed successfully.",
    )
    ids["review"] = review.id

    clock.advance(60)
    late = await story.accepted(await story.attempt("S1005", 350, "254712000005"), "ws_CO_5")
    late = await story.move(
        late,
        AttemptState.FAILED,
        Actor.QUERY,
        "query_failure",
        after_s=40,
        result_code="1037",
        result_desc="DS timeout user cannot be reached",
    )
    late = await story.move(
        late,
        AttemptState.COMPLETED,
        Actor.CALLBACK,
        "callback_success",
        after_s=90,
        flags=AttemptFlag.LATE,
        result_code="0",
        result_desc="The service request is processed successfully.",
        receipt_number="SDK9Z8Y7X6",
    )
    ids["late"] = late.id

    clock.advance(60)
    unknown = await story.attempt("S1006", 75, "254712000006")
    unknown = await story.move(
        unknown,
        AttemptState.UNKNOWN,
        Actor.SYSTEM,
        "push_outcome_unknown",
        push_sent_at=clock.now(),
        result_desc="No answer from M-Pesa in time",
    )
    ids["unknown"] = unknown.id

    clock.advance(60)
    broke = await story.accepted(await story.attempt("S1007", 2350, "254712000002"), "ws_CO_7")
    broke = await story.move(
        broke,
        AttemptState.FAILED,
        Actor.CALLBACK,
        "callback_failure",
        after_s=15,
        extra={"callback_code": "1"},
        result_code="1",
        result_desc="The balance is insufficient for the transaction.",
    )
    ids["insufficient"] = broke.id

    problem_ids: dict[str, int] = {}
    clock.advance(60)
    async with store.write() as tx:
        unmatched = await store.problems.record(
            tx,
            SHOP,
            ProblemKind.UNMATCHED_CALLBACK,
            {
                "attempt_ref": "refGONE",
                "checkout_request_id": "ws_CO_99",
                "result_code": "0",
                "amount": "640",
                "receipt": "SDK5P4Q3R2",
            },
            till_id=TILL,
        )
    problem_ids["unmatched"] = unmatched.id
    clock.advance(60)
    async with store.write() as tx:
        pattern = await store.problems.record(
            tx,
            SHOP,
            ProblemKind.SUSPICIOUS_PATTERN,
            {
                "pattern": "failures_for_phone",
                "phone": "2547******02",
                "failures": 3,
                "window_s": 600,
                "last_attempt_id": broke.id,
            },
            till_id=TILL,
        )
    problem_ids["pattern"] = pattern.id
    clock.advance(60)
    return ids, problem_ids


@asynccontextmanager
async def seeded_till(
    tmp_path: Path,
    *,
    shop_secrets: tuple[str, str, str] = FIXED_SECRETS,
    pin: str | None = PIN,
    settings: Settings | None = None,
    **service_options: Any,
) -> AsyncIterator[Seeded]:
    data_dir = tmp_path / "till"
    data_dir.mkdir()
    create_keyring(keyring_path(data_dir))
    clock = ManualClock(START)
    settings = settings or make_settings(data_dir)
    told: list[tuple[dict[str, int], dict[str, int]]] = []

    async def seed(store: Store) -> None:
        await add_shop(store, shop_secrets)
        told.append(await tell_story(store, clock))
        if pin is not None:
            await ManagerPin.of(store).set(Secret(pin))

    # The till as the app opens it; its relay and Daraja are closed ports (tests that need
    # M-Pesa bring their own), so no relay link and no Daraja probe.
    async with open_till(
        settings,
        clock=clock,
        run_reconciler=False,
        probe_daraja=False,
        read_feed=False,
        no_relay_url=settings.relay.url,
        prepare=seed,
        till_id=TILL,
    ) as till:
        ((ids, problem_ids),) = told
        service = ManagerService.for_engine(till.engine, **service_options)
        yield Seeded(
            data_dir,
            settings,
            clock,
            till.store,
            till.engine,
            service,
            ids,
            problem_ids,
            shop_secrets,
        )


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Seeded]:
    async with seeded_till(tmp_path) as till:
        yield till


@pytest.fixture
async def signed_in(seeded: Seeded) -> Seeded:
    check = await seeded.service.sign_in(Secret(PIN))
    assert check.accepted
    return seeded


def build_app(seeded: Seeded, **options: Any) -> SmartDukaApp:
    services = AppServices(
        payments=seeded.engine,
        clock=seeded.clock,
        identity=TillIdentity(SHOP, TILL, "Mama Duka"),
        connection=ConnectionBoard(ONLINE),
        manager_tools=lambda: seeded.service,
    )
    return make_app(seeded.settings, services, options=UiOptions(cursor_blink=False, **options))


def new_canary_secrets() -> tuple[str, str, str]:
    from tests.store.canaries import new_canary

    return new_canary("ck"), new_canary("cs"), new_canary("pk") + secrets.token_hex(4)


Snap = Callable[[SmartDukaApp], None]


@pytest.fixture
def snap(snapshot: SnapshotAssertion) -> Snap:
    """Compare the running app's screen with the stored SVG (pytest-textual-snapshot's format;
    `--snapshot-update` rewrites it)."""
    svg_snapshot = snapshot.use_extension(SVGImageExtension)

    def compare(app: SmartDukaApp) -> None:
        assert svg_snapshot == app.export_screenshot(title="SmartDuka Till")

    return compare


# Workers that run for the app's whole life: the clock tick. The others (the awaiting count
# among them, which the status bar shows) are waited for.
_LONG_LIVED = frozenset({"clock"})


async def settle(pilot: Pilot[Any]) -> None:
    """Let the screens' workers (service calls, on every screen) finish and the screen repaint.
    Bounded in real time: it is about not hanging, not about speed."""
    deadline = time.monotonic() + 15
    while True:
        await pilot.pause()
        busy = [w for w in pilot.app.workers if w.group not in _LONG_LIVED and not w.is_finished]
        if not busy:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"workers still running: {busy}")
        await pilot.app.workers.wait_for_complete(busy)
    await pilot.pause()
