"""The connection board (connectivity.py): listeners hear only changes."""

from __future__ import annotations

from smartduka_tui.connectivity import ConnectionBoard, ConnectionState, Reachability


def test_board_tells_listeners_only_about_changes() -> None:
    board = ConnectionBoard()
    heard: list[ConnectionState] = []
    unsubscribe = board.subscribe(heard.append)
    board.set(daraja=Reachability.REACHABLE)
    board.set(daraja=Reachability.REACHABLE)
    board.set(relay=Reachability.UNREACHABLE)
    unsubscribe()
    board.set(relay=Reachability.REACHABLE)
    assert heard == [
        ConnectionState(Reachability.REACHABLE, Reachability.NOT_USED),
        ConnectionState(Reachability.REACHABLE, Reachability.UNREACHABLE),
    ]
    assert board.current() == ConnectionState(Reachability.REACHABLE, Reachability.REACHABLE)
