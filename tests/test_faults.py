"""Fault points: checked names, and nothing happens unless SMARTDUKA_FAULT names the point (the
SIGKILL itself is exercised by the crash tests in tests/payments and tests/cli)."""

from __future__ import annotations

from collections import Counter

import pytest

from smartduka_tui import faults


def test_an_unknown_point_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault point 'after-lunch'"):
        faults.fault_point("after-lunch")


@pytest.mark.parametrize(
    "setting",
    ["", faults.AFTER_PUSH_SENT, f"{faults.ROTATE_AFTER_BATCH}:3", faults.ROTATE_AFTER_KEYRING],
)
def test_a_point_not_named_or_not_yet_due_lets_the_process_live(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setattr(faults, "_reached", Counter[str]())
    monkeypatch.setenv(faults.ENV_VAR, setting)
    for _ in range(2):  # the third time would be the one for ":3"
        faults.fault_point(faults.ROTATE_AFTER_BATCH)
    faults.fault_point(faults.AFTER_ATTEMPT_COMMIT)
    assert faults._reached[faults.ROTATE_AFTER_BATCH] == (2 if ":3" in setting else 0)
