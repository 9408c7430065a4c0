"""The audit viewer's filter, lines and chain verdict."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from smartduka_tui.manager.errors import ManagerInputError
from smartduka_tui.manager.lists import parse_key, parse_period, split_words
from smartduka_tui.manager.words import ACTOR_WORDS, describe_entry, kenya_time
from smartduka_tui.model import Actor
from smartduka_tui.store.records import AuditEntry

ACTOR_NAMES: tuple[str, ...] = tuple(actor.value for actor in Actor)
"""What the audit filter's "who" accepts."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actors: frozenset[Actor] | None = None
    action_prefix: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    attempt_id: int | None = None
    include_till: bool = True
    """Entries of no shop too: manager sign-ins, PIN changes, key rotation."""

    def describe(self) -> str:
        parts: list[str] = []
        if self.actors:
            parts.append("/".join(sorted(ACTOR_WORDS[a].lower() for a in self.actors)))
        if self.action_prefix:
            parts.append(f"{self.action_prefix}…")
        if self.since or self.until:
            start = kenya_time(self.since)[:16] if self.since else "…"
            end = kenya_time(self.until)[:16] if self.until else "…"
            parts.append(f"{start} to {end}")
        if self.attempt_id is not None:
            parts.append(f"payment A{self.attempt_id}")
        return ", ".join(parts) or "everything"


def audit_filter_from_text(
    *, actor: str = "", action: str = "", since: str = "", until: str = "", attempt: str = ""
) -> AuditFilter:
    actors: set[Actor] = set()
    for word in split_words(actor):
        key = word.lower()
        match = next(
            (a for a, words in ACTOR_WORDS.items() if key in (a.value, words.lower())), None
        )
        if match is None:
            names = ", ".join(a.value for a in Actor)
            raise ManagerInputError("actor", f"{word!r} is not one of: {names}")
        actors.add(match)
    action = action.strip()
    if action and not re.fullmatch(r"[a-z_.]{1,64}", action):
        raise ManagerInputError(
            "action", "must be the start of an action name, like attempt. or manager.sign"
        )
    start, end = parse_period(since, until)
    attempt_id = None
    if attempt.strip():
        kind, number = parse_key(attempt if attempt.strip()[:1].isalpha() else "A" + attempt)
        if kind != "A":
            raise ManagerInputError("attempt", "must be a payment like A12")
        attempt_id = number
    return AuditFilter(
        actors=frozenset(actors) or None,
        action_prefix=action or None,
        since=start,
        until=end,
        attempt_id=attempt_id,
    )


@dataclass(frozen=True, slots=True)
class AuditLine:
    id: int
    at: datetime
    actor: Actor
    who: str
    action: str
    text: str
    attempt_id: int | None
    shop_wide: bool
    """False for entries of no shop (the till's own, like manager sign-ins)."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    lines: tuple[AuditLine, ...]
    next_before_id: int | None


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    intact: bool
    entries: int
    first_broken_id: int | None
    message: str


def audit_line(entry: AuditEntry) -> AuditLine:
    return AuditLine(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        who=ACTOR_WORDS[entry.actor],
        action=entry.action,
        text=describe_entry(entry),
        attempt_id=entry.attempt_id,
        shop_wide=entry.shop_id is not None,
    )
