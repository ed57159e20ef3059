"""The programme's business calendar: a day is a day in Pekalongan (Asia/Jakarta, WIB).

Instants are recorded in UTC; every rule that asks "which day is it" (ages, due dates, expiry,
the day a claim is filed, reports) asks ``business_day`` of the instant, so at 05:19 WIB on
2 December it is 2 December, not the UTC 1 December.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

BUSINESS_ZONE = ZoneInfo("Asia/Jakarta")


def business_day(instant: datetime) -> date:
    """The day in Pekalongan at ``instant`` (an aware datetime)."""
    if instant.tzinfo is None:
        raise ValueError(f"{instant.isoformat()} has no time zone; instants are aware")
    return instant.astimezone(BUSINESS_ZONE).date()
