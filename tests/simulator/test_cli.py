"""`smartduka-sim` as a user runs it: help, headless control subcommands, refusals.

One test starts the real entry point (`python -m smartduka_tui.simulator`); the others call
`cli.main` in a worker thread (the `sim` fixture) to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.simulator.conftest import CliRunner
from tests.simulator.support import CallbackReceiver, Daraja, closed_port_url
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def run_module(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smartduka_tui.simulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_help_documents_the_magic_numbers_and_control_api() -> None:
    code, out, _ = await run_module("--help")
    assert code == 0
    for text in (
        "254700000001  cancels the prompt (1032)",
        "254700000007  never answers",
        "254708374149",
        "/__sim/clock/advance",
        "sim-demo-consumer-key",
    ):
        assert text in out


async def test_scenario_advance_and_log(
    sim: CliRunner,
    simulator: ServerProcess,
    control: SimulatorControl,
    daraja: Daraja,
    receiver: CallbackReceiver,
) -> None:
    url = simulator.base_url
    phone = unique_phone()
    code, out, err = await sim(
        "scenario", phone, "--result", "1032", "--duplicates", "1", "--url", url
    )
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["source"], shown["result_code"], shown["duplicates"]) == ("scripted", 1032, 1)
    scenario, _ = await control.phone_scenario(phone)
    assert (scenario.result_code, scenario.duplicates) == (1032, 1)

    callback = receiver.url()
    checkout_id = await daraja.push_ok(phone, callback)
    code, out, err = await sim("advance", "3", "--url", url)
    assert code == 0, err
    assert "callback(s) delivered" in out
    assert len(receiver.at(callback)) == 2

    code, out, err = await sim("log", "--phone", phone, "--url", url)
    assert code == 0, err
    [line] = out.splitlines()
    assert "/mpesa/stkpush/v1/processrequest -> 200" in line and checkout_id in line

    code, out, err = await sim("callbacks", "--checkout", checkout_id, "--url", url)
    assert code == 0, err
    assert len(out.splitlines()) == 2 and "ResultCode 1032" in out and "HTTP 200" in out

    code, out, err = await sim("transactions", "--checkout", checkout_id, "--url", url)
    assert code == 0, err
    [line] = out.splitlines()
    assert line.startswith(checkout_id) and line.endswith("ResultCode 1032")
    code, out, err = await sim("log", "--phone", phone, "--json", "--url", url)
    assert code == 0, err
    [entry] = json.loads(out)
    assert (entry["path"], entry["checkout_request_id"]) == (
        "/mpesa/stkpush/v1/processrequest",
        checkout_id,
    )


async def test_cli_refusals_are_plain_messages(
    sim: CliRunner, simulator: ServerProcess, control: SimulatorControl
) -> None:
    phone = unique_phone()
    code, _, err = await sim(
        "scenario", phone, "--unanswered", "--result", "1", "--url", simulator.base_url
    )
    assert code == 2
    assert "unanswered prompt always ends with 1037" in err and "Traceback" not in err
    assert (await control.phone_scenario(phone))[1] == "default"

    code, _, err = await sim("advance", "-4", "--url", simulator.base_url)
    assert code == 2 and "seconds: Input should be greater than 0" in err

    code, _, err = await sim("log", "--url", closed_port_url().rsplit("/", 2)[0])
    assert code == 1 and "cannot reach the simulator" in err

    code, _, err = await sim("serve", "--port", "0", "--callback-delay", "-1")
    assert code == 2 and "callback_delay_s" in err


async def test_pay_till_and_notices(
    sim: CliRunner,
    simulator: ServerProcess,
    control: SimulatorControl,
    daraja: Daraja,
    receiver: CallbackReceiver,
) -> None:
    url = simulator.base_url
    confirmation = receiver.url("c2b")
    registered = await daraja.http.post(
        "/mpesa/c2b/v2/registerurl",
        json={
            "ShortCode": daraja.shop.shortcode,
            "ResponseType": "Completed",
            "ConfirmationURL": confirmation,
        },
        headers=await daraja.bearer(),
    )
    assert registered.status_code == 200
    phone = unique_phone()
    code, out, err = await sim("pay-till", daraja.shop.shortcode, phone, "150", "--url", url)
    assert code == 0, err
    assert "KES 150.00" in out and f"{phone[:4]} ***** {phone[-3:]}" in out
    assert "confirmation follows" in out
    await sim("advance", "2", "--url", url)
    [received] = receiver.at(confirmation)
    code, out, err = await sim("notices", "--shortcode", daraja.shop.shortcode, "--url", url)
    assert code == 0, err
    [line] = out.splitlines()
    assert "c2b_confirmation" in line and received.json()["TransID"] in line and "200" in line

    code, _, err = await sim("pay-till", daraja.shop.shortcode, "0712", "150", "--url", url)
    assert code == 2 and "phone must be 12 digits" in err
    assert len(await control.c2b_payments(daraja.shop.shortcode)) == 1
