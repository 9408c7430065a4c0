"""The offline banner's words (ui/widgets/offline_banner.py), for a connection down or silent."""

from __future__ import annotations

from smartduka_tui.connectivity import ConnectionState, Reachability
from smartduka_tui.ui.widgets.offline_banner import (
    DARAJA_DOWN,
    DARAJA_NOT_ANSWERING,
    RELAY_DOWN,
    RELAY_NOT_ANSWERING,
    banner_text,
)
from smartduka_tui.ui.widgets.status_bar import describe


def test_banner_says_which_connection_is_down() -> None:
    up = ConnectionState(Reachability.REACHABLE, Reachability.REACHABLE)
    assert banner_text(up) == ""
    assert banner_text(ConnectionState(Reachability.UNREACHABLE, Reachability.REACHABLE)) == (
        DARAJA_DOWN
    )
    assert banner_text(ConnectionState(Reachability.REACHABLE, Reachability.UNREACHABLE)) == (
        RELAY_DOWN
    )
    both = banner_text(ConnectionState(Reachability.UNREACHABLE, Reachability.UNREACHABLE))
    assert DARAJA_DOWN in both and RELAY_DOWN in both


def test_a_silent_connection_is_down_amber_and_promises_nothing() -> None:
    """Issue case 8: a hung Daraja or relay gets its own words, counts as down (so sales are
    refused), and the relay banner no longer says payments still complete."""
    silent = ConnectionState(Reachability.NOT_ANSWERING, Reachability.NOT_ANSWERING)
    assert silent.daraja_down and silent.relay_down and silent.offline
    assert describe("M-Pesa", Reachability.NOT_ANSWERING) == ("◐ M-Pesa NO REPLY", "-silent")
    assert banner_text(silent) == f"{DARAJA_NOT_ANSWERING}\n{RELAY_NOT_ANSWERING}"
    relay_only = ConnectionState(Reachability.REACHABLE, Reachability.NOT_ANSWERING)
    assert banner_text(relay_only) == RELAY_NOT_ANSWERING
    for words in (RELAY_DOWN, RELAY_NOT_ANSWERING):
        assert "still complete" not in words
