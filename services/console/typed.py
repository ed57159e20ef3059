"""Dates and amounts as officers type them, in the forms the services read."""

from __future__ import annotations

import re
from datetime import datetime

from services.console.i18n import JAKARTA


def iso_date(typed: str) -> str:
    """A date as Indonesians write it (18-11-1985, 18/11/1985) in the ISO form the services
    read; anything else is passed on for the service to name what is wrong with it."""
    found = re.fullmatch(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})", typed)
    if found:
        day, month, year = found.groups()
        return f"{year}-{int(month):02d}-{int(day):02d}"
    return typed


def day_or_today(typed: str) -> str:
    """The day typed (as ``iso_date`` reads it), or, when nothing is typed, today in Jakarta."""
    typed = typed.strip()
    return iso_date(typed) if typed else datetime.now(JAKARTA).date().isoformat()


def rupiahs(typed: str) -> int:
    """An amount as typed ("Rp33.600", "33600") in rupiah; nothing typed is 0, for the
    service to refuse with its reason."""
    digits = re.sub(r"[^0-9]", "", typed)
    return int(digits) if digits else 0
