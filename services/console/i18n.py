"""Languages: Bahasa Indonesia first, English second, per user.

Message ids are English; the Indonesian catalogue (``locale/id/LC_MESSAGES/messages.po``) is
compiled in memory when the console starts, so no compiled ``.mo`` is kept beside its source
to go stale, and no build step is needed. Amounts, dates and names of codes are shown the way
the user's language writes them.
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from contract.policy import policy_book

Language = Literal["id", "en"]
LANGUAGES: tuple[Language, ...] = ("id", "en")
DEFAULT_LANGUAGE: Language = "id"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
JAKARTA = ZoneInfo("Asia/Jakarta")


def catalogue_path(language: Language) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


@cache
def translations(language: Language) -> gettext.NullTranslations:
    if language == "en":
        return gettext.NullTranslations()  # the message ids are the English text
    with catalogue_path(language).open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def rupiah(amount: int | None, language: Language) -> str:
    """``Rp16.800`` in Indonesian, ``Rp16,800`` in English."""
    if amount is None:
        return "–"
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp{format_decimal(abs(amount), format='#,##0', locale=language)}"


def number(value: int | None, language: Language) -> str:
    return "–" if value is None else format_decimal(value, format="#,##0", locale=language)


def long_date(day: date | str | None, language: Language) -> str:
    """``18 November 2024``."""
    if day is None or day == "":
        return "–"
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    return format_date(day, "d MMMM y", locale=language)


def instant(moment: datetime | str | None, language: Language) -> str:
    """An instant as a Jakarta clock shows it (WIB)."""
    if moment is None or moment == "":
        return "–"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return format_datetime(moment, "d MMMM y HH:mm", tzinfo=JAKARTA, locale=language) + " WIB"


def occupation_name(code: str | None, language: Language) -> str:
    """The catalogue's name: ``Tukang becak`` (Indonesian) or ``pedicab driver`` (English)."""
    if not code:
        return "–"
    for policy in reversed(policy_book().policies):
        label = policy.occupations.get(code)
        if label:
            indonesian, _, english = label.partition(" (")
            return indonesian if language == "id" or not english else english.rstrip(")")
    return code


def kelurahan_name(code: str | None) -> str:
    if not code:
        return "–"
    place = policy_book().kelurahan.get(code)
    return place.name if place else code


def kecamatan_name(code: str | None) -> str:
    if not code:
        return "–"
    for place in policy_book().kelurahan.values():
        if place.kecamatan_code == code:
            return place.kecamatan_name
    return code
