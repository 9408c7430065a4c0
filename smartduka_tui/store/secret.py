"""A secret in memory: its repr, str and format are masked, so it never leaks into logs."""

from __future__ import annotations

import hmac
from typing import NoReturn

MASK = "****"
_SHOWN_TAIL = 4
_MIN_LENGTH_TO_SHOW_TAIL = 12


class Secret:
    """A credential (consumer key or secret, passkey, till key, callback secret).

    Only `reveal()` gives the value; everything that prints or serialises it gets a mask.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds text")
        self._value = value

    def reveal(self) -> str:
        """The plaintext, for the one place that must send or encrypt it."""
        return self._value

    def masked(self) -> str:
        """`****` plus the last four characters (for a manager telling secrets apart), or only
        `****` when the secret is too short to show any of it safely."""
        if len(self._value) < _MIN_LENGTH_TO_SHOW_TAIL:
            return MASK
        return MASK + self._value[-_SHOWN_TAIL:]

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")
