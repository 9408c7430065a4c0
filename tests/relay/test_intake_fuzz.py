"""Hypothesis against the callback route in-process: arbitrary paths, headers and bodies never
produce a 5xx, and nothing but a valid signed STK callback is stored as a callback."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.relay.conftest import SAFARICOM_IP, attempt_path, callback_body

SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0, max_size=70
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
STK_FIELDS = st.sampled_from(
    ["MerchantRequestID", "CheckoutRequestID", "ResultCode", "ResultDesc", "CallbackMetadata"]
)
STK_LIKE = st.builds(
    lambda fields: json.dumps({"Body": {"stkCallback": fields}}).encode(),
    st.dictionaries(STK_FIELDS, JSON_VALUES),
)
BODIES = st.one_of(
    st.binary(max_size=3000),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    STK_LIKE,
    st.just(b""),
)
HEADER_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda n: n.lower() not in {"content-length", "transfer-encoding", "host"}
)
HEADERS = st.dictionaries(
    st.one_of(HEADER_NAMES, st.sampled_from(["X-Forwarded-For", "Content-Type", "Authorization"])),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    max_size=4,
)
SOURCES = st.sampled_from([SAFARICOM_IP, "127.0.0.2", f"::ffff:{SAFARICOM_IP}", "10.0.0.1"])


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_callback_route_never_answers_5xx(make_harness: Any) -> None:
    loop = asyncio.new_event_loop()
    context = make_harness(trusted_proxies="10.0.0.0/8")
    harness = loop.run_until_complete(context.__aenter__())
    try:
        shop = loop.run_until_complete(harness.shop())
        signed = attempt_path(shop)
        paths = st.one_of(
            st.just(signed),
            st.lists(SEGMENT, max_size=6).map(
                lambda parts: "/hooks/stk/" + "/".join(quote(p, safe="") for p in parts)
            ),
            st.tuples(st.integers(0, len(signed) - 1), st.characters(codec="ascii")).map(
                lambda edit: signed[: edit[0]] + quote(edit[1], safe="") + signed[edit[0] + 1 :]
            ),
        )
        statuses: set[int] = set()

        @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=paths, body=BODIES, headers=HEADERS, source=SOURCES)
        def check(path: str, body: bytes, headers: dict[str, str], source: str) -> None:
            response = loop.run_until_complete(
                harness.client(source).post(path, content=body, headers=headers)
            )
            statuses.add(response.status_code)
            assert response.status_code < 500, (response.status_code, response.text)

        check()
        # A real callback still gets through after all that.
        ok = loop.run_until_complete(harness.post(attempt_path(shop), callback_body()))
        assert ok.status_code == 200
        with sqlite3.connect(harness.relay.settings.db) as conn:
            rows = conn.execute("SELECT body FROM events WHERE kind = 'callback'").fetchall()
        for (body,) in rows:
            data = json.loads(body)
            assert set(data["Body"]["stkCallback"]) >= {"MerchantRequestID", "ResultCode"}
        assert statuses & {400, 404}
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
