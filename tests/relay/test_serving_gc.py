"""The collector while the relay serves: startup heap frozen, young generation collected less
often, both undone when the app stops."""

from __future__ import annotations

import gc
from typing import Any

from tests.relay.conftest import attempt_path, callback_body


async def test_collector_is_tuned_while_serving_and_restored_after(make_harness: Any) -> None:
    before = gc.get_threshold()
    async with make_harness() as h:
        serving = gc.get_threshold()
        frozen = gc.get_freeze_count()
        shop = await h.shop()
        assert (await h.post(attempt_path(shop), callback_body())).status_code == 200
    assert serving == (max(before[0], 5000), *before[1:])
    assert frozen > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
