"""What the manager service refuses, each with a message for a person.

The hierarchy:

* ManagerError (Exception)
  * NotSignedIn
  * ManagerInputError
    * EnrolmentRefused
  * ActionRefused
"""

from __future__ import annotations

from enum import StrEnum


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


class EnrolmentProblem(StrEnum):
    """Why an enrolment file that reads well cannot be kept on this till."""

    NO_RELAY_URL = "no_relay_url"
    INSECURE_RELAY_URL = "insecure_relay_url"
    NO_TILL = "no_till"
    """A rotated callback secret for a shop with no till enrolled yet."""


class EnrolmentRefused(ManagerInputError):
    """An enrolment refused for `problem`, nothing stored; each face says it in its own terms
    (the screen names the file, the command the flag that fixes it)."""

    def __init__(self, problem: EnrolmentProblem, message: str) -> None:
        super().__init__("enrolment", message)
        self.problem = problem


class ActionRefused(ManagerError):
    """A well-formed action that cannot be done to this item (the message says why)."""
