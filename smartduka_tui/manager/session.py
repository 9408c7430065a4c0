"""Who is signed in as manager, and for how long without activity."""

from __future__ import annotations

from smartduka_tui.clock import Clock

IDLE_TIMEOUT_S = 300


class ManagerSession:
    """Who is signed in, and since when were they last active (by the injectable clock)."""

    def __init__(self, clock: Clock, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self._clock = clock
        self.idle_timeout_s = idle_timeout_s
        self._signed_in = False
        self._last_activity = 0.0

    @property
    def signed_in(self) -> bool:
        return self._signed_in

    def start(self) -> None:
        self._signed_in = True
        self._last_activity = self._clock.monotonic()

    def end(self) -> None:
        self._signed_in = False

    def touch(self) -> None:
        """A key press or action: the idle timer starts again."""
        if self._signed_in:
            self._last_activity = self._clock.monotonic()

    def idle_expired(self) -> bool:
        idle = self._clock.monotonic() - self._last_activity
        return self._signed_in and idle >= self.idle_timeout_s
