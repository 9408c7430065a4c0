"""The relay as a real uvicorn process on loopback: source addresses, streaming limits, logs,
an absent till, dead-letter replay through the CLI."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from callback_relay import cli
from tests.relay.conftest import RelayProcess, attempt_path, bearer, callback_body

TOKEN = {"Authorization": "Bearer metrics-token-for-tests"}


def client_from(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


_LOCAL: list[httpx.Client] = []


@pytest.fixture(scope="module", autouse=True)
def _local_client() -> Iterator[None]:
    """One keep-alive client from 127.0.0.1 for the helpers (making clients is slow)."""
    with client_from("127.0.0.1") as client:
        _LOCAL.append(client)
        yield
        _LOCAL.clear()


def metric(relay: RelayProcess, name: str, labels: str) -> float:
    text = _LOCAL[0].get(f"{relay.base_url}/metrics").text
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def feed(relay: RelayProcess, enrolment: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    response = _LOCAL[0].get(
        f"{relay.base_url}/v1/events", params=params, headers=bearer(enrolment)
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def ack(relay: RelayProcess, enrolment: dict[str, Any], event_id: int) -> None:
    response = _LOCAL[0].post(
        f"{relay.base_url}/v1/events/{event_id}/ack", headers=bearer(enrolment)
    )
    assert response.status_code == 200


def raw_request(
    port: int, head: bytes, chunks: list[bytes], source: str = "127.0.0.1"
) -> tuple[int, int]:
    """Send a request over a raw socket, a chunk at a time, stopping as soon as the server
    answers. Returns the status and how many body bytes were sent before the answer."""
    with socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) as sock:
        sock.sendall(head)
        sent = 0
        for chunk in chunks:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n" not in reply:
                data = sock.recv(4096)
                if not data:
                    break
                reply += data
    return int(reply.split(b" ", 2)[1]), sent


def test_spoofing_matrix_over_real_sockets(production_relay: RelayProcess) -> None:
    relay = production_relay
    shop = relay.shop("Spoof target")
    other = relay.shop("Other shop")
    url = relay.base_url
    port = relay.server.port
    refusals_before = {
        reason: metric(relay, "relay_refusals_total", f'reason="{reason}"')
        for reason in (
            "bad_signature",
            "source_not_allowed",
            "body_too_large",
            "malformed_json",
            "not_stk_callback",
        )
    }
    with (
        client_from("127.0.0.1") as listed,
        client_from("127.0.0.2") as unlisted,
        client_from("127.0.0.3") as proxy,
    ):
        assert listed.post(url + attempt_path(shop), content=callback_body()).status_code == 200
        good = attempt_path(shop)
        foreign_tag = attempt_path(other).rpartition(".")[2]
        forged = good.rpartition(".")[0] + "." + foreign_tag
        assert listed.post(url + forged, content=callback_body()).status_code == 404
        replayed = good.replace(good.split("/")[5], "replayedforanother22")
        assert listed.post(url + replayed, content=callback_body()).status_code == 404
        assert unlisted.post(url + good, content=callback_body()).status_code == 403
        spoofed = {"X-Forwarded-For": "127.0.0.1"}
        assert (
            unlisted.post(url + good, content=callback_body(), headers=spoofed).status_code == 403
        )
        assert proxy.post(url + good, content=callback_body(), headers=spoofed).status_code == 200
        laundered = {"X-Forwarded-For": "127.0.0.1, 127.0.0.2"}
        assert proxy.post(url + good, content=callback_body(), headers=laundered).status_code == 403
        assert listed.post(url + good, content=b'{"Body": ').status_code == 400
        assert listed.post(url + good, content=b'{"hello": "world"}').status_code == 400

    def head(extra: bytes) -> bytes:
        # A fresh attempt each time: repeats of one signed refusal are stored once.
        line = b"POST " + attempt_path(shop).encode() + b" HTTP/1.1\r\n"
        return line + b"Host: relay\r\nContent-Type: application/json\r\n" + extra

    # Chunked and far too long: refused while streaming, long before the sender is done.
    chunk = b"x" * 8192
    chunked = [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 128
    status, sent = raw_request(port, head(b"Transfer-Encoding: chunked\r\n\r\n"), chunked)
    assert status == 413
    assert sent < 512 * 1024
    # A Content-Length that admits to being too long: refused before any body is read.
    status, sent = raw_request(port, head(b"Content-Length: 10000000\r\n\r\n"), [])
    assert (status, sent) == (413, 0)
    # A Content-Length shorter than the body: only that much is read, which is not JSON.
    body = callback_body()
    status, _ = raw_request(port, head(b"Content-Length: 20\r\n\r\n"), [body])
    assert status == 400

    for reason, extra in {
        "bad_signature": 2,
        "source_not_allowed": 3,
        "body_too_large": 2,
        "malformed_json": 2,
        "not_stk_callback": 1,
    }.items():
        after = metric(relay, "relay_refusals_total", f'reason="{reason}"')
        assert after == refusals_before[reason] + extra, reason

    events = feed(relay, shop)
    callbacks = [e for e in events if e["kind"] == "callback"]
    security = sorted(e["security"]["reason"] for e in events if e["kind"] == "security")
    assert len(callbacks) == 2
    assert security == sorted(
        ["source_not_allowed"] * 3
        + ["body_too_large"] * 2
        + ["malformed_json"] * 2
        + ["not_stk_callback"]
    )
    assert feed(relay, other) == []
    for event in events:
        ack(relay, shop, event["id"])


def test_metrics_are_closed_to_other_addresses(production_relay: RelayProcess) -> None:
    url = production_relay.base_url + "/metrics"
    with client_from("127.0.0.2") as outside, client_from("127.0.0.1") as local:
        assert outside.get(url).status_code == 403
        assert outside.get(url, headers=TOKEN).status_code == 200
        assert local.get(url).status_code == 200


def test_retired_kid_is_refused_by_the_running_relay(production_relay: RelayProcess) -> None:
    relay = production_relay
    shop = relay.shop("Rotating")
    with client_from("127.0.0.1") as client:
        assert (
            client.post(relay.base_url + attempt_path(shop), content=callback_body()).status_code
            == 200
        )
        assert cli.main(["shop", "rotate-secret", shop["shop_id"], "--db", str(relay.db)]) == 0
        assert cli.main(["shop", "retire-kid", shop["shop_id"], "k1", "--db", str(relay.db)]) == 0
        # The running relay learns of the change within registry_refresh_s (1 s).
        deadline = time.monotonic() + 10
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = client.post(
                relay.base_url + attempt_path(shop), content=callback_body()
            ).status_code
            time.sleep(0.05)
        assert status == 404


def test_logs_never_show_a_callback_path(production_relay: RelayProcess) -> None:
    relay = production_relay
    shop = relay.shop("Logged")
    paths = [attempt_path(shop) for _ in range(3)]
    with client_from("127.0.0.2") as client:
        for path in paths:
            client.post(relay.base_url + path, content=b"not json")
            client.post(relay.base_url + path + "x", content=b"{}")
    time.sleep(0.2)
    log = relay.server.log_path.read_text(errors="replace")
    assert "refused signed callback" in log
    for path in paths:
        tag = path.rpartition(".")[2]
        assert tag not in log
        assert path.split("/")[5] not in log
    assert shop["till_key"] not in log and shop["callback_secret"] not in log


def test_a_till_that_stops_reading_gets_everything_on_return(
    production_relay: RelayProcess,
) -> None:
    relay = production_relay
    shop = relay.shop("Absent till")
    refs = []
    with client_from("127.0.0.1") as client:
        for _ in range(60):
            path = attempt_path(shop)
            assert client.post(relay.base_url + path, content=callback_body()).status_code == 200
            refs.append(path.split("/")[5])
    received: dict[int, str] = {}
    while True:
        events = feed(relay, shop, limit=25)
        if not events:
            break
        for event in events:
            received.setdefault(event["id"], event["attempt_ref"])
            ack(relay, shop, event["id"])
    assert [received[i] for i in sorted(received)] == refs


def test_an_unacknowledged_event_dead_letters_and_replay_brings_it_back(
    production_relay: RelayProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    relay = production_relay
    shop = relay.shop("Never acks")
    with client_from("127.0.0.1") as client:
        assert (
            client.post(relay.base_url + attempt_path(shop), content=callback_body()).status_code
            == 200
        )
    first = feed(relay, shop)
    assert [e["delivery_count"] for e in first] == [1]
    # The long-poll wakes when the 1 s visibility timeout ends.
    second = feed(relay, shop, wait=5)
    assert [(e["id"], e["delivery_count"]) for e in second] == [(first[0]["id"], 2)]
    # After the second delivery times out the event is dead: nothing more comes.
    assert feed(relay, shop, wait=2) == []
    capsys.readouterr()
    assert cli.main(["replay", "--till", shop["till_id"], "--db", str(relay.db)]) == 0
    assert "Replayed 1 dead-lettered event(s)" in capsys.readouterr().out
    again = feed(relay, shop)
    assert [(e["id"], e["flags"]) for e in again] == [(first[0]["id"], ["replayed"])]
    ack(relay, shop, again[0]["id"])
