"""Kenya time for Daraja timestamps.

Daraja's `Timestamp` and a callback's `TransactionDate` are `YYYYMMDDHHmmss` wall-clock strings
with no zone; the community practice that works is Kenya time (EAT, UTC+3, no daylight saving).
`tzdata` supplies the zone on machines without system zone files; if even that is missing we fall
back to a fixed +03:00, which is the same thing for Kenya.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
_TIMESTAMP = re.compile(r"^\d{14}$")


def _kenya_zone() -> tzinfo:
    try:
        return ZoneInfo("Africa/Nairobi")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone(timedelta(hours=3), "EAT")


KENYA_TZ: tzinfo = _kenya_zone()


def kenya_timestamp(now: datetime) -> str:
    """`now` as Daraja's `YYYYMMDDHHmmss` in Kenya time. `now` must be timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("kenya_timestamp needs a timezone-aware datetime")
    return now.astimezone(KENYA_TZ).strftime(TIMESTAMP_FORMAT)


def kenya_clock(moment: datetime) -> str:
    """`moment` as the shop's wall clock shows it, `HH:MM:SS` in Kenya time: the one way
    every screen and message writes a time of day."""
    return moment.astimezone(KENYA_TZ).strftime("%H:%M:%S")


def parse_kenya_timestamp(text: str) -> datetime:
    """A `YYYYMMDDHHmmss` Kenya-time string as an aware datetime; ValueError if malformed."""
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError("timestamp must be 14 digits, YYYYMMDDHHmmss")
    # Slicing the digits is several times faster than strptime, and the relay parses one of
    # these on every success callback.
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=KENYA_TZ,
        )
    except ValueError as exc:
        raise ValueError("timestamp is not a real date and time") from exc
