"""What the manager service refuses, each with a message for a person.

The hierarchy:

* ManagerError (Exception)
  * NotSignedIn
  * ManagerInputError
  * ActionRefused
"""

from __future__ import annotations


class ManagerError(Exception):
    """Base of what the manager service refuses; the message is for a person, as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotSignedIn(ManagerError):
    """A manager action without a signed-in session (never signed in, signed out, or idle)."""


class ManagerInputError(ManagerError):
    """A value the manager typed is not acceptable; `field` names it and nothing changed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ActionRefused(ManagerError):
    """A well-formed action that cannot be done to this item (the message says why)."""
