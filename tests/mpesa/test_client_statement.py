"""DarajaClient's statement methods against the real simulator process over loopback: each API
end to end (async results parsed by the till's own parsers), Daraja's refusals as specific
errors, token refresh, and transport failures split into refused and outcome unknown."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
import pytest_asyncio
from pydantic import SecretStr

from smartduka_tui.mpesa.client import DarajaClient
from smartduka_tui.mpesa.errors import RequestOutcomeUnknown, RequestRefused
from smartduka_tui.mpesa.qr import qr_to_half_blocks
from smartduka_tui.mpesa.statement import (
    MsisdnForm,
    ReversalOutcome,
    ReversalRequest,
    TransactionStatus,
    parse_async_result,
    parse_c2b_payment,
    reversal_outcome,
)
from smartduka_tui.mpesa.statement_requests import (
    build_pull_query,
    build_pull_register,
    build_qr_code,
    build_register_url,
    build_reversal,
    build_transaction_status,
)
from smartduka_tui.simulator.control import SimulatorControl
from tests.conftest import unique_phone
from tests.mpesa.support import RawDaraja, RecordingClock, SimShop, closed_loopback_port
from tests.mpesa.support import register_shop as register_sim_shop
from tests.simulator.support import CallbackReceiver
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

INITIATOR = "apiop"
PASSWORD = SecretStr("Initiator-test-only-7")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def control(simulator: ServerProcess) -> AsyncIterator[SimulatorControl]:
    async with SimulatorControl(simulator.base_url) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def shop(control: SimulatorControl) -> SimShop:
    found = await register_sim_shop(control)
    await control.set_initiator(found.shortcode, INITIATOR, PASSWORD.get_secret_value())
    return found


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest_asyncio.fixture(loop_scope="session")
async def client(simulator: ServerProcess, clock: RecordingClock) -> AsyncIterator[DarajaClient]:
    async with DarajaClient(simulator.base_url, clock, rng=random.Random(7)) as daraja:
        yield daraja


async def _paid(control: SimulatorControl, shop: SimShop, amount: str = "150") -> str:
    return (await control.pay_till(shop.shortcode, unique_phone(), amount)).trans_id


async def test_register_urls_then_a_direct_payment_parses_at_the_till(
    client: DarajaClient, control: SimulatorControl, shop: SimShop, receiver: CallbackReceiver
) -> None:
    url = receiver.url("c2b")
    answer = await client.register_c2b_urls(
        shop.merchant, build_register_url(shop.shortcode, confirmation_url=url)
    )
    assert answer.response_code == "0"
    assert answer.originator_conversation_id  # read from "OriginatorCoversationID"
    phone = unique_phone()
    paid = await control.pay_till(shop.shortcode, phone, "150", first_name="MARY")
    await control.advance_clock(2)
    [received] = receiver.at(url)
    payment = parse_c2b_payment(received.body)
    assert (payment.trans_id, payment.amount, payment.first_name) == (paid.trans_id, 150, "MARY")
    assert payment.payer.form is MsisdnForm.MASKED
    assert payment.payer.could_be(phone)


async def test_a_confirmation_with_cents_is_refused_by_the_parser(
    client: DarajaClient, control: SimulatorControl, shop: SimShop, receiver: CallbackReceiver
) -> None:
    url = receiver.url("c2b")
    await client.register_c2b_urls(
        shop.merchant, build_register_url(shop.shortcode, confirmation_url=url)
    )
    await control.pay_till(shop.shortcode, unique_phone(), "99.50")
    await control.advance_clock(2)
    [received] = receiver.at(url)
    with pytest.raises(ValueError, match="cents"):
        parse_c2b_payment(received.body)


async def test_second_production_registration_is_a_specific_refusal(
    client: DarajaClient, control: SimulatorControl
) -> None:
    shop = await register_sim_shop(control, environment="production")
    request = build_register_url(
        shop.shortcode, confirmation_url="https://127.0.0.1:9/c2b/tok", production=True
    )
    await client.register_c2b_urls(shop.merchant, request)
    with pytest.raises(RequestRefused) as refused:
        await client.register_c2b_urls(shop.merchant, request)
    assert (refused.value.http_status, refused.value.error_code) == (500, "500.003.1001")
    assert refused.value.error_message == "Urls are already registered."
    assert "tok" not in str(refused.value)


async def test_transaction_status_verifies_a_receipt(
    client: DarajaClient, control: SimulatorControl, shop: SimShop, receiver: CallbackReceiver
) -> None:
    receipt = await _paid(control, shop, "150")
    result_url = receiver.url("result")
    request = build_transaction_status(
        shortcode=shop.shortcode,
        receipt=receipt.lower(),
        initiator=INITIATOR,
        password=PASSWORD,
        certificate=await control.certificate(),
        result_url=result_url,
        queue_timeout_url=receiver.url("timeout"),
    )
    accepted = await client.transaction_status(shop.merchant, request)
    assert accepted.accepted
    await control.advance_clock(2)
    [received] = receiver.at(result_url)
    result = parse_async_result(received.body)
    assert result.originator_conversation_id == accepted.originator_conversation_id
    status = TransactionStatus.from_result(result)
    assert (status.receipt, status.amount, status.status) == (receipt, Decimal(150), "Completed")


async def test_transaction_status_with_a_wrong_password_ends_2001(
    client: DarajaClient, control: SimulatorControl, shop: SimShop, receiver: CallbackReceiver
) -> None:
    receipt = await _paid(control, shop)
    result_url = receiver.url("result")
    request = build_transaction_status(
        shortcode=shop.shortcode,
        receipt=receipt,
        initiator=INITIATOR,
        password=SecretStr("wrong-password"),
        certificate=await control.certificate(),
        result_url=result_url,
        queue_timeout_url=receiver.url("timeout"),
    )
    await client.transaction_status(shop.merchant, request)
    await control.advance_clock(2)
    [received] = receiver.at(result_url)
    assert parse_async_result(received.body).result_code == 2001


async def test_reversal_is_reversed_only_by_its_result(
    client: DarajaClient, control: SimulatorControl, shop: SimShop, receiver: CallbackReceiver
) -> None:
    receipt = await _paid(control, shop, "200")
    certificate = await control.certificate()

    def reversal(result_url: str) -> ReversalRequest:
        return build_reversal(
            shortcode=shop.shortcode,
            receipt=receipt,
            amount=200,
            initiator=INITIATOR,
            password=PASSWORD,
            certificate=certificate,
            result_url=result_url,
            queue_timeout_url=receiver.url("timeout"),
            remarks="paid twice",
        )

    first_url, second_url = receiver.url("result"), receiver.url("result")
    first = reversal(first_url)
    accepted = await client.reverse(shop.merchant, first)
    assert accepted.accepted
    assert receiver.at(first_url) == []  # acceptance is not a reversal
    await control.advance_clock(2)
    [done] = receiver.at(first_url)
    assert reversal_outcome(parse_async_result(done.body)) is ReversalOutcome.REVERSED
    await client.reverse(shop.merchant, reversal(second_url))
    await control.advance_clock(2)
    [again] = receiver.at(second_url)
    assert reversal_outcome(parse_async_result(again.body)) is ReversalOutcome.ALREADY_REVERSED


async def test_pull_registers_and_reads_pages(
    client: DarajaClient, control: SimulatorControl, receiver: CallbackReceiver
) -> None:
    shop = await register_sim_shop(control, pull_page_size=2)
    first = await client.register_pull(
        shop.merchant,
        build_pull_register(
            shop.shortcode, nominated_number="0712345678", callback_url=receiver.url("pull")
        ),
    )
    assert first.registered and not first.already_registered
    receipts = [await _paid(control, shop, str(n)) for n in (10, 20, 30)]
    # Pull dates have whole seconds: end a second later so payments made this second count.
    now = (await control.clock()).now + timedelta(seconds=1)
    seen: list[str] = []
    offset = 0
    while True:
        request = build_pull_query(
            shop.shortcode, start=now - timedelta(hours=1), end=now, offset=offset, now=now
        )
        page = await client.pull_transactions(shop.merchant, request)
        if page.empty:
            break
        seen.extend(row.transaction_id for row in page.transactions)
        offset += len(page.transactions)
    assert seen == receipts
    assert offset == 3


async def test_qr_image_renders_as_half_blocks(client: DarajaClient, shop: SimShop) -> None:
    request = build_qr_code(
        merchant_name="Mama Duka", reference="SALE-9", amount=150, cpi=shop.shortcode
    )
    answer = await client.generate_qr(shop.merchant, request)
    lines = qr_to_half_blocks(answer.png())
    assert 10 <= len(lines) <= 24
    assert all(len(line) == len(lines[0]) <= 80 for line in lines)


async def test_bad_fields_that_slip_past_builders_get_darajas_envelope(
    client: DarajaClient, control: SimulatorControl, shop: SimShop, receiver: CallbackReceiver
) -> None:
    request = build_transaction_status(
        shortcode=shop.shortcode,
        receipt="ZZZ0000000",
        initiator=INITIATOR,
        password=PASSWORD,
        certificate=await control.certificate(),
        result_url=receiver.url("result"),
        queue_timeout_url=receiver.url("timeout"),
    )
    broken = request.model_copy(update={"identifier_type": "9"})
    with pytest.raises(RequestRefused) as refused:
        await client.transaction_status(shop.merchant, broken)
    assert (refused.value.http_status, refused.value.error_code) == (400, "400.002.02")
    assert refused.value.error_message == "Bad Request - Invalid IdentifierType"


async def test_another_apps_shortcode_is_merchant_not_found(
    client: DarajaClient, control: SimulatorControl, shop: SimShop
) -> None:
    other = await register_sim_shop(control)
    request = build_register_url(other.shortcode, confirmation_url="http://127.0.0.1:9/c2b/x")
    with pytest.raises(RequestRefused) as refused:
        await client.register_c2b_urls(shop.merchant, request)
    assert refused.value.error_code == "500.001.1001"
    assert refused.value.error_message == "Merchant does not exist"


async def test_a_revoked_token_is_refreshed_once(
    client: DarajaClient, control: SimulatorControl, shop: SimShop
) -> None:
    request = build_qr_code(merchant_name="Duka", reference="S1", amount=5, cpi=shop.shortcode)
    await client.generate_qr(shop.merchant, request)
    await control.set_app(shop.consumer_key, shop.consumer_secret + "x")  # revokes tokens
    await control.set_app(shop.consumer_key, shop.consumer_secret)
    answer = await client.generate_qr(shop.merchant, request)
    assert answer.request_id


async def test_connection_refused_is_a_refusal_and_a_reset_is_outcome_unknown(
    clock: RecordingClock, control: SimulatorControl, shop: SimShop
) -> None:
    request = build_qr_code(merchant_name="Duka", reference="S1", amount=5, cpi=shop.shortcode)
    closed = f"http://127.0.0.1:{closed_loopback_port()}"
    async with DarajaClient(closed, clock) as nowhere:
        with pytest.raises(RequestRefused, match="not sent"):
            await nowhere.generate_qr(shop.merchant, request)
    raw = await RawDaraja(push_mode="reset").start()
    try:
        async with DarajaClient(raw.base_url, clock) as resetting:
            reversal = build_reversal(
                shortcode=shop.shortcode,
                receipt="ZZZ0000000",
                amount=5,
                initiator=INITIATOR,
                password=PASSWORD,
                certificate=await control.certificate(),
                result_url="http://127.0.0.1:9/r",
                queue_timeout_url="http://127.0.0.1:9/t",
                remarks="test",
            )
            with pytest.raises(RequestOutcomeUnknown, match="no answer came back"):
                await resetting.reverse(shop.merchant, reversal)
    finally:
        await raw.stop()
