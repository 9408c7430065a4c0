"""Secrets and their derivatives stay out of the audit log, the database, logs and reprs:
the callback path (a capability), the callback secret, the passkey, consumer key and secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from smartduka_tui.model import AttemptState
from smartduka_tui.mpesa import callback_path
from smartduka_tui.payments.gateway import PushOrder
from tests.conftest import unique_phone
from tests.payments.harness import KID, TillHarness


async def test_no_secret_or_callback_path_in_audit_database_logs_or_reprs(
    shop_till: TillHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = shop_till
    caplog.set_level(logging.DEBUG)
    phone = unique_phone()
    view = await h.engine.start_payment("SEC1", 10, phone)
    await h.advance_sim(2)
    await h.engine.check_now(view.attempt_id)
    assert (await h.view(view.attempt_id)).state is AttemptState.COMPLETED
    attempt = await h.store.attempts.get(h.shop_id, int(view.attempt_id))
    assert attempt is not None
    signed = callback_path.sign(h.callback_secret, h.shop_id, h.till_id, attempt.attempt_ref, KID)
    credentials = await h.store.shops.credentials(h.shop_id)
    secrets = {
        "callback tag": signed.tag,
        "callback path": signed.path(),
        "callback secret": h.callback_secret,
        "passkey": credentials.passkey.reveal(),
        "consumer key": credentials.consumer_key.reveal(),
        "consumer secret": credentials.consumer_secret.reveal(),
    }
    entries = await h.store.audit.entries(h.shop_id, limit=1000)
    audit_text = "\n".join(str(e.detail) for e in entries)
    await h.close()
    stored = b"".join(p.read_bytes() for p in Path(h.data_dir).glob("till.db*"))
    logs = "\n".join(r.getMessage() for r in caplog.records)
    shown = [
        view.model_dump_json(),
        repr(PushOrder(10, phone, "TSSEC1", "SmartDuka", "https://relay" + signed.path())),
        repr(h.engine.gateway),
    ]
    for name, value in secrets.items():
        assert value not in audit_text, f"{name} in the audit log"
        assert value.encode() not in stored, f"{name} in the database"
        assert value not in logs, f"{name} in the logs"
        for text in shown:
            assert value not in text, f"{name} in {text[:40]}"
    await h.open()
