"""The relay process under `run_server`: SIGTERM answers open long-polls and the process ends on
its own, instead of waiting out uvicorn's graceful shutdown for a poll that would not end."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.relay.conftest import bearer, start_relay

HANG_S = 60.0
"""Only a hang reaches this: each wait below ends on a condition long before."""


def test_sigterm_answers_an_open_long_poll_and_the_relay_exits(tmp_path: Path) -> None:
    # At debug level the feed logs each long-poll it starts waiting on: how the test knows the
    # poll is open inside the relay before it sends SIGTERM.
    relay = start_relay(
        tmp_path / "relay",
        env={"SMARTDUKA_RELAY_LOG_LEVEL": "debug", "SMARTDUKA_RELAY_FEED_MAX_WAIT_S": "120"},
    )
    try:
        till = relay.shop("Stopping relay")
        url = f"{relay.base_url}/v1/events"
        with ThreadPoolExecutor(1) as pool:
            poll = pool.submit(
                httpx.get, url, params={"wait": "120"}, headers=bearer(till), timeout=HANG_S
            )
            deadline = time.monotonic() + HANG_S
            opened = f"till {till['till_id']}: long-poll open"
            while opened not in relay.server.log_path.read_text(errors="replace"):
                assert time.monotonic() < deadline, "the long-poll never reached the relay"
                assert not poll.done(), poll.result()
                time.sleep(0.01)
            relay.server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            returncode = relay.server.proc.wait(timeout=HANG_S)  # type: ignore[union-attr]
            answer = poll.result(timeout=HANG_S)
        assert answer.status_code == 200
        assert answer.json() == {"events": []}
        assert returncode in (0, -signal.SIGTERM)
        assert "timeout graceful shutdown exceeded" not in relay.server.log_tail()
    finally:
        relay.server.stop()
