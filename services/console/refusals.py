"""The services' refusals in the user's language.

The services answer in English sentences with the field each concerns; the ones an officer
meets on these pages are recognised here and said again in the user's language, with their
numbers. A sentence not recognised is shown as the service wrote it, under a translated
heading, so nothing the service said is lost.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Mapping

from services.console.i18n import Language, rupiah


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for a message marked only
    return message


# (pattern of the service's sentence, the message to show, with the pattern's named groups)
KNOWN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message)
    for pattern, message in (
        (r"must be exactly 16 digits", N_("The NIK must be exactly 16 digits.")),
        (
            r"encodes month (?P<month>\d+), not 01 to 12",
            N_("The NIK encodes month %(month)s; a month is 01 to 12."),
        ),
        (
            r"encodes day (?P<day>\d+): men 01-31, women 41-71",
            N_("The NIK encodes day %(day)s: 01-31 for men, 41-71 for women (day + 40)."),
        ),
        (
            r"serial \(last four digits\) must not be 0000",
            N_("The NIK's last four digits (its serial) must not be 0000."),
        ),
        (
            r"(?P<given>\d{4}-\d{2}-\d{2}) disagrees with the NIK, which encodes (?P<encoded>.+)",
            N_("The birth date %(given)s disagrees with the NIK, which encodes %(encoded)s."),
        ),
        (
            r"declared (?P<declared>[MF]), but the NIK encodes (?P<encoded>[MF])",
            N_(
                "The sex given is %(declared)s but the NIK encodes %(encoded)s "
                "(for women the NIK's day is the birth day plus 40)."
            ),
        ),
        (
            r"age (?P<age>\d+) on (?P<on>\S+) is outside (?P<low>\d+) to (?P<high>\d+)",
            N_("Age %(age)s on %(on)s is outside the programme's %(low)s to %(high)s years."),
        ),
        (r"is not in the catalogue in force", N_("This occupation is not in the catalogue.")),
        (
            r"is not one of the 27 kelurahan",
            N_("This is not one of the 27 kelurahan of Kota Pekalongan."),
        ),
        (
            r"this NIK is already registered as worker (?P<worker>\S+)",
            N_("This NIK is already registered (worker %(worker)s)."),
        ),
        (r"^Field required", N_("Required.")),
        (r"^String should match pattern", N_("Not in the expected form.")),
        (r"^Input should be a valid date", N_("Not a valid date: write day-month-year.")),
        (r"^Input should be 'M' or 'F'", N_("Choose one.")),
        (
            r"^String should have at (most|least) (?P<count>\d+) character",
            N_("Too long or too short: at most or at least %(count)s characters."),
        ),
        (
            r"no coverage in (?P<period>\S+) is left to invoice",
            N_("No coverage in %(period)s is left to invoice."),
        ),
        (r"this invoice is already paid", N_("This invoice is already paid.")),
        (
            r"quota for (?P<year>\d+) is full: (?P<designated>\d+) of (?P<quota>\d+) designated",
            N_("The quota for %(year)s is full: %(designated)s of %(quota)s designated."),
        ),
        (
            r"cover costs Rp(?P<amount>[\d,]+) \((?P<months>\d+) months x Rp(?P<premium>[\d,]+)\)"
            r" but the \w+ budget for (?P<year>\d+) has Rp(?P<total>[\d,]+) left \(allocated "
            r"Rp(?P<allocated>[\d,]+), committed Rp(?P<committed>[\d,]+)\)",
            N_(
                "The cover costs %(amount)s (%(months)s months x %(premium)s) but the budget "
                "for %(year)s has %(total)s left (allocated %(allocated)s, committed "
                "%(committed)s)."
            ),
        ),
        (
            r"the case is at the (?P<stage>kelurahan|kecamatan) step, not city",
            N_("The case is still at the %(stage)s step: it is not ready for designation."),
        ),
        (
            r"already designated for (?P<year>\d+)",
            N_("Already designated for %(year)s; a renewal is for a later fiscal year."),
        ),
        (r"payment reference was used before", N_("This SP2D reference was used before.")),
        (
            r"Rp(?P<amount>[\d,]+) differs from the invoice total Rp(?P<total>[\d,]+)",
            N_("%(amount)s differs from the invoice total %(total)s."),
        ),
        (
            r"may not|not allowed|outside the caller's area|another (kelurahan|kecamatan)",
            N_("Your role or area may not do this."),
        ),
    )
)


# Groups that are amounts of rupiah, written again the way the user's language writes them.
AMOUNTS = frozenset({"amount", "total", "premium", "allocated", "committed"})


def translated(sentence: str, language: gettext.NullTranslations) -> str:
    # The English "translations" are the identity: the only ones not read from a catalogue.
    code: Language = "en" if type(language) is gettext.NullTranslations else "id"
    for pattern, message in KNOWN:
        found = pattern.search(sentence)
        if found:
            values = {
                name: rupiah(int(value.replace(",", "")), code) if name in AMOUNTS else value
                for name, value in found.groupdict().items()
            }
            return language.gettext(message) % values
    return language.gettext("The service refused: %(reason)s") % {"reason": sentence}


def by_field(
    problems: list[tuple[str, str]],
    detail: str,
    language: gettext.NullTranslations,
    fields: Mapping[str, str],
) -> tuple[dict[str, list[str]], list[str]]:
    """The refusals next to the form's fields (``fields`` maps a service's field name to the
    form's), and those concerning no field of the form."""
    at: dict[str, list[str]] = {}
    general: list[str] = []
    for name, message in problems:
        if name in fields:
            at.setdefault(fields[name], []).append(translated(message, language))
        else:
            general.append(translated(message, language))
    if not problems and detail:
        general.append(translated(detail, language))
    return at, general
