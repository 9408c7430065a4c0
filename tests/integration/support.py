"""Helpers for end-to-end tests: a real relay process, tills in tmp_path data folders, and
`smartduka pay` as a subprocess. Everything talks over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from callback_relay import cli as relay_cli
from smartduka_tui.clock import Clock, SystemClock
from smartduka_tui.config import Settings
from smartduka_tui.demo_shop import new_till_folder, relay_enrolment
from smartduka_tui.model import ShopType
from smartduka_tui.payments.bootstrap import running_engine
from smartduka_tui.payments.service import PaymentEngine
from smartduka_tui.simulator.control import SimulatorControl
from smartduka_tui.store.records import (
    Attempt,
    AuditEntry,
    Problem,
    ShopConfig,
    ShopSecrets,
)
from smartduka_tui.store.secret import Secret
from smartduka_tui.store.store import Store, database_path, keyring_path
from smartduka_tui.till import Till as OpenTill
from smartduka_tui.till import open_till
from tests.support.processes import ServerProcess
from tests.support.tls import TlsFiles

MAIN = "import sys; from smartduka_tui.cli import main; sys.exit(main())"
_numbers = itertools.count(1)
T = TypeVar("T")

# Quick feedback for tests: a re-delivered event comes back after 2 s; feed reads unthrottled.
RELAY_ENV = {
    "SMARTDUKA_RELAY_VISIBILITY_TIMEOUT_S": "2",
    "SMARTDUKA_RELAY_FEED_RATE_PER_S": "1000",
    "SMARTDUKA_RELAY_FEED_RATE_BURST": "1000",
    "SMARTDUKA_RELAY_REGISTRY_REFRESH_S": "0.2",
}
# Only loopback is on the allowlist, and 127.0.0.1 is a trusted proxy, so a test can post a
# correctly signed callback "from" an unlisted address with X-Forwarded-For. Sandbox mode (it
# logs such a source) unless a test starts a production relay, which serves TLS (`tls_files`).
RELAY_ARGS = ("--allowlist", "127.0.0.1", "--trusted-proxies", "127.0.0.1")


def unique_name(stem: str) -> str:
    return f"{stem}{os.getpid() % 1000}x{next(_numbers)}"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTDUKA_")}
    env.update(extra)
    return env


@dataclass
class RelayHandle:
    """A relay served by `python -m callback_relay serve` on loopback, and its database."""

    server: ServerProcess
    db: Path

    @property
    def url(self) -> str:
        return self.server.base_url

    async def cli(self, *args: str) -> int:
        """Run a `smartduka-relay` command in-process (in a thread: it runs its own loop).

        Its output is dropped: enrolment prints the till key and callback secret once, and a
        failing test's captured output must not carry them.
        """

        def run() -> int:
            with contextlib.redirect_stdout(io.StringIO()):
                return relay_cli.main([*args, "--db", str(self.db)])

        return await asyncio.to_thread(run)

    async def enrol(self, *args: str) -> dict[str, Any]:
        """`shop add NAME ...` or `till add SHOP`, returning the enrolment JSON."""
        out = self.db.parent / f"enrol-{next(_numbers)}-{os.getpid()}.json"
        code = await self.cli(*args, "--out", str(out), "--json", "--public-url", self.url)
        assert code == 0, args
        data: dict[str, Any] = json.loads(out.read_text())
        out.unlink()
        return data

    def set_platform(self, shortcode: str, daraja_url: str, creds: PlatformCreds) -> None:
        """`platform set`, secrets on standard input as an operator would pipe them."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "callback_relay",
                "platform",
                "set",
                "--shortcode",
                shortcode,
                "--daraja-url",
                daraja_url,
                "--db",
                str(self.db),
            ],
            input=f"{creds.key}\n{creds.secret}\n{creds.passkey}\n",
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return list(conn.execute(sql, params).fetchall())


def start_relay(workdir: Path, *extra: str, tls: TlsFiles | None = None) -> RelayHandle:
    """A sandbox relay on http://127.0.0.1; with `tls`, a production one on https:// (clients
    trust the test CA through SSL_CERT_FILE)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "relay.db"
    # The broker builds every CallBackURL from the relay's public URL, so the port is chosen
    # first and the URL given at start.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scheme = "https" if tls else "http"
    args = ["--db", str(db), *RELAY_ARGS, "--public-url", f"{scheme}://127.0.0.1:{port}"]
    if tls is not None:
        args += ["--mode", "production", "--tls-cert", str(tls.cert_file)]
        args += ["--tls-key", str(tls.key_file)]
    server = ServerProcess(
        "callback_relay", workdir, [*args, *extra], env=RELAY_ENV, port=port, scheme=scheme
    ).start()
    return RelayHandle(server, db)


@dataclass(frozen=True)
class PlatformCreds:
    key: str = field(default_factory=lambda: secrets.token_hex(12))
    secret: str = field(default_factory=lambda: secrets.token_hex(12))
    passkey: str = field(default_factory=lambda: secrets.token_hex(32))


@dataclass
class Platform:
    """The platform's paybill, registered on the simulator and set at the relay."""

    shortcode: str
    creds: PlatformCreds


@dataclass
class Till:
    """A till's data folder, set up as `smartduka shop add` + `smartduka enrol` would."""

    data_dir: Path
    simulator_url: str
    enrolment: dict[str, Any]
    prefix: str
    shortcode: str | None

    @property
    def shop_id(self) -> str:
        return str(self.enrolment["shop_id"])

    @property
    def till_id(self) -> str:
        return str(self.enrolment["till_id"])

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            SMARTDUKA_DATA_DIR=str(self.data_dir),
            SMARTDUKA_DARAJA__BASE_URL=self.simulator_url,
            SMARTDUKA_TIMINGS__UI_REFRESH_S="1",
            **extra,
        )

    def settings(self, **overrides: Any) -> Settings:
        data: dict[str, Any] = {
            "data_dir": self.data_dir,
            "daraja": {"base_url": self.simulator_url},
            "timings": {"ui_refresh_s": 1},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return Settings(**data)

    def pay(
        self, sale: str, amount: int, phone: str, *extra: str, **env: str
    ) -> subprocess.Popen[str]:
        """Start `smartduka pay` (the caller waits or kills it); add "--json" to `extra` for
        the final view as JSON, leave it out to read the "sent:" line first."""
        return subprocess.Popen(
            [sys.executable, "-c", MAIN, "pay", "--sale-ref", sale, "--amount", str(amount),
             "--phone", phone, *extra],
            cwd=self.data_dir.parent,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    async def store(self) -> Store:
        from smartduka_tui.store.vault import load_keyring

        return await Store.open(
            database_path(self.data_dir),
            clock=SystemClock(),
            keyring=load_keyring(keyring_path(self.data_dir)),
        )

    async def attempts(self) -> list[Attempt]:
        store = await self.store()
        try:
            rows = await store.db.fetchall("SELECT id FROM attempts ORDER BY id")
            found = [await store.attempts.get(self.shop_id, row["id"]) for row in rows]
            return [a for a in found if a is not None]
        finally:
            await store.close()

    async def problems(self) -> list[Problem]:
        store = await self.store()
        try:
            return await store.problems.list(self.shop_id, include_resolved=True, limit=500)
        finally:
            await store.close()

    async def transitions(self, attempt_id: int) -> list[AuditEntry]:
        """The attempt's state changes, oldest first."""
        store = await self.store()
        try:
            entries = await store.audit.entries(self.shop_id, attempt_id=attempt_id, limit=500)
        finally:
            await store.close()
        return [e for e in reversed(entries) if e.action == "attempt.transition"]

    @asynccontextmanager
    async def engine(
        self, *, clock: Clock | None = None, run_reconciler: bool = False, **overrides: Any
    ) -> AsyncIterator[PaymentEngine]:
        """This till's engine alone in process (its data folder locked meanwhile): no relay
        link, for tests whose point is the engine, or that drive its feed themselves."""
        async with running_engine(
            self.settings(**overrides), clock=clock, run_reconciler=run_reconciler
        ) as engine:
            yield engine

    @asynccontextmanager
    async def opened(
        self,
        *,
        clock: Clock | None = None,
        run_reconciler: bool = False,
        probe_daraja: bool = False,
        no_relay_url: str | None = None,
        relay_transport: httpx.AsyncBaseTransport | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        **overrides: Any,
    ) -> AsyncIterator[OpenTill]:
        """This till opened in process as the app opens it (`open_till`: engine, relay link,
        desks), with `overrides` to its settings; no reconciler or probe unless asked."""
        async with open_till(
            self.settings(**overrides),
            clock=clock,
            run_reconciler=run_reconciler,
            probe_daraja=probe_daraja,
            no_relay_url=no_relay_url,
            relay_transport=relay_transport,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
        ) as till:
            yield till


async def make_till(
    data_dir: Path,
    simulator_url: str,
    enrolment: dict[str, Any],
    *,
    prefix: str,
    shortcode: str | None = None,
    creds: PlatformCreds | None = None,
) -> Till:
    """A till for `enrolment`: a paybill shop with its own credentials (`shortcode`, `creds`),
    or, without them, a shop paid through the platform."""
    till = Till(data_dir, simulator_url, enrolment, prefix, shortcode)
    if shortcode is None:
        config = ShopConfig(
            id=till.shop_id,
            name="Platform shop",
            mpesa_type=ShopType.PLATFORM,
            account_prefix=prefix,
        )
        secrets_ = ShopSecrets()
    else:
        assert creds is not None
        config = ShopConfig(
            id=till.shop_id,
            name="Own paybill shop",
            mpesa_type=ShopType.PAYBILL,
            account_prefix=prefix,
            business_shortcode=shortcode,
        )
        secrets_ = ShopSecrets(
            consumer_key=Secret(creds.key),
            consumer_secret=Secret(creds.secret),
            passkey=Secret(creds.passkey),
        )
    await new_till_folder(data_dir, config, secrets_, relay_enrolment(enrolment))
    return till


async def own_shortcode(sim: SimulatorControl, **settings: Any) -> tuple[str, PlatformCreds]:
    """A fresh paybill on the simulator with its own app."""
    creds = PlatformCreds()
    view = await sim.register_shortcode(
        passkey=creds.passkey,
        consumer_key=creds.key,
        consumer_secret=creds.secret,
        settings=settings,
    )
    return view.shortcode, creds


def finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, dict[str, Any], str]:
    """Wait for a `pay --json`: (exit code, the printed view, stderr)."""
    out, err = proc.communicate(timeout=timeout)
    try:
        view: dict[str, Any] = json.loads(out) if out.strip() else {}
    except ValueError:
        view = {"unparsed": out}
    return proc.returncode, view, err


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, every: float = 0.1
) -> T:
    """The first truthy result of `check`, polled until `timeout` (then its last result)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every)
