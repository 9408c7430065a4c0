"""The status bar's words for each connection (ui/widgets/status_bar.py)."""

from __future__ import annotations

from smartduka_tui.connectivity import Reachability
from smartduka_tui.ui.widgets.status_bar import describe


def test_status_words() -> None:
    assert describe("M-Pesa", Reachability.UNREACHABLE) == ("✖ M-Pesa OFFLINE", "-down")
    assert describe("Relay", Reachability.NOT_USED) == ("", "-unused")
    assert describe("Relay", Reachability.REACHABLE) == ("● Relay", "-ok")
