"""`smartduka pay` end to end: the real simulator, the relay as a process, the till as a process.

A payment is finished by its callback coming back through the relay (not by a query), for a shop
with its own paybill and for one paid through the platform's paybill via the relay's broker;
Daraja's request log shows who was charged and with which AccountReference.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from smartduka_tui.model import Actor, AttemptState
from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.integration.support import (
    Platform,
    RelayHandle,
    Till,
    finish,
    make_till,
    own_shortcode,
    unique_name,
)


async def direct_till(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, name: str = "d"
) -> Till:
    shortcode, creds = await own_shortcode(sim, callback_delay_s=0.3)
    enrolment = await relay.enrol("shop", "add", unique_name("Own paybill "))
    return await make_till(
        tmp_path / name, sim.base_url, enrolment, prefix="OWN", shortcode=shortcode, creds=creds
    )


async def platform_till(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, prefix: str, name: str = "p"
) -> Till:
    enrolment = await relay.enrol(
        "shop", "add", unique_name("Platform shop "), "--platform", "--prefix", prefix
    )
    return await make_till(tmp_path / name, sim.base_url, enrolment, prefix=prefix)


async def assert_paid_by_callback(till: Till, view: dict[str, object]) -> None:
    assert view["state"] == "COMPLETED", view
    assert view["receipt"], "a query carries no receipt: this came from the callback"
    (attempt,) = await till.attempts()
    moves = await till.transitions(attempt.id)
    completed = [e for e in moves if e.detail["to"] == AttemptState.COMPLETED.value]
    assert len(completed) == 1 and completed[0].actor is Actor.CALLBACK
    assert await till.problems() == []


async def test_direct_shop_pay_completes_on_the_callback(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    till = await direct_till(tmp_path, relay, sim)
    phone = unique_phone()
    code, view, err = finish(till.pay("E2E1", 150, phone, "--json"))
    assert code == 0, err
    await assert_paid_by_callback(till, view)
    requests = await sim.requests(phone=phone)
    pushes = [r for r in requests if r.path.endswith("/stkpush/v1/processrequest")]
    assert len(pushes) == 1
    assert pushes[0].body["BusinessShortCode"] == till.shortcode
    assert pushes[0].body["PartyB"] == till.shortcode
    assert pushes[0].body["AccountReference"] == "OWNE2E1"
    assert pushes[0].body["CallBackURL"].startswith(relay.url)  # scheme, host, port only
    assert not [r for r in requests if "stkpushquery" in r.path], "finished without a query"
    (delivery,) = await sim.callbacks(phone=phone)
    assert delivery.status == 200


async def test_platform_shop_pay_completes_on_the_callback_through_the_broker(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, platform: Platform
) -> None:
    till = await platform_till(tmp_path, relay, sim, "PL")
    phone = unique_phone()
    code, view, err = finish(till.pay("E2E2", 275, phone, "--json"))
    assert code == 0, err
    await assert_paid_by_callback(till, view)
    requests = await sim.requests(phone=phone)
    pushes = [r for r in requests if r.path.endswith("/stkpush/v1/processrequest")]
    assert len(pushes) == 1
    assert pushes[0].body["BusinessShortCode"] == platform.shortcode
    assert pushes[0].body["PartyB"] == platform.shortcode
    assert pushes[0].body["TransactionType"] == "CustomerPayBillOnline"
    assert pushes[0].body["AccountReference"] == "PLE2E2"
    assert pushes[0].body["Amount"] == 275
    assert not [r for r in requests if "stkpushquery" in r.path], "finished without a query"
    # The platform's secrets never reach the till: not in its files, not in what pay printed.
    blobs = [p.read_bytes() for p in till.data_dir.rglob("*") if p.is_file()]
    relay_log = relay.server.log_path.read_text(errors="replace")
    for secret in (platform.creds.key, platform.creds.secret, platform.creds.passkey):
        assert not any(secret.encode() in blob for blob in blobs)
        assert secret not in str(view) and secret not in err
        assert secret not in relay_log
    assert till.enrolment["till_key"] not in relay_log + err
    assert "/hooks/stk/" + till.shop_id + "/" + till.till_id not in relay_log + err


async def test_two_tills_of_one_shop_each_get_only_their_own_callbacks(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl
) -> None:
    shortcode, creds = await own_shortcode(sim, callback_delay_s=0.3)
    first = await relay.enrol("shop", "add", unique_name("Two tills "))
    second = await relay.enrol("till", "add", first["shop_id"])
    tills = [
        await make_till(
            tmp_path / name, sim.base_url, e, prefix="TT", shortcode=shortcode, creds=creds
        )
        for name, e in (("a", first), ("b", second))
    ]
    phones = [unique_phone(), unique_phone()]
    procs = [
        till.pay(f"TWO{n}", 120 + n, phone, "--json")
        for n, (till, phone) in enumerate(zip(tills, phones, strict=True))
    ]
    for till, proc in zip(tills, procs, strict=True):
        code, view, err = finish(proc)
        assert code == 0, err
        await assert_paid_by_callback(till, view)  # and no false alarm on either till
    for till in tills:
        (attempt,) = await till.attempts()
        refs = relay.rows(
            "SELECT attempt_ref, state FROM events WHERE shop_id = ? AND till_id = ?",
            till.shop_id,
            till.till_id,
        )
        assert refs == [(attempt.attempt_ref, "acked")], "only its own attempt's callback"


async def test_brokered_shops_keep_working_when_a_new_token_revokes_the_old_one(
    tmp_path: Path, relay: RelayHandle, sim: SimulatorControl, platform: Platform
) -> None:
    await sim.set_app(platform.creds.key, platform.creds.secret, revoke_old_token=True)
    try:
        first = await platform_till(tmp_path, relay, sim, "RA", name="ra")
        second = await platform_till(tmp_path, relay, sim, "RB", name="rb")
        code, view, err = finish(first.pay("TOK1", 40, unique_phone(), "--json"))
        assert code == 0, err
        await assert_paid_by_callback(first, view)
        # Someone else with the platform's credentials (another relay, a script) gets a token:
        # the broker's cached one is revoked.
        async with httpx.AsyncClient(base_url=sim.base_url) as client:
            minted = await client.get(
                "/oauth/v1/generate",
                params={"grant_type": "client_credentials"},
                auth=(platform.creds.key, platform.creds.secret),
            )
        assert minted.status_code == 200
        phone = unique_phone()
        code, view, err = finish(second.pay("TOK2", 41, phone, "--json"))
        assert code == 0, err
        await assert_paid_by_callback(second, view)
        pushes = [
            r
            for r in await sim.requests(shortcode=platform.shortcode)
            if r.path.endswith("/processrequest") and r.phone == phone
        ]
        assert [p.error_code for p in pushes] == ["404.001.03", None], "refused once, then sent"
        assert [p.body["AccountReference"] for p in pushes] == ["RBTOK2", "RBTOK2"]
    finally:
        await sim.set_app(platform.creds.key, platform.creds.secret, revoke_old_token=False)
