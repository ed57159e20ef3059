"""The bounds of every text field and list in the contracts, stated once, and the one text type
that enforces them.

Every text is normalised to Unicode NFC and stripped of surrounding whitespace, then refused if
it is blank, longer than its bound, or holds a character that does not show: control characters
(NUL, C0 and C1, so terminal escapes too), format characters (zero-width spaces and joiners,
bidirectional overrides such as U+202E), lone surrogates and line or paragraph separators. Only
free-text notes may hold line breaks. Lengths count characters after normalisation; the JSON
Schemas and OpenAPI documents state every bound (``maxLength``, ``maxItems``).

The bounds keep the largest event far below a topic's maximum message size (tested), so a
registration or a claim can never be too large to publish.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

NAME_CHARS = 200  # a person's or an organisation's name
ADDRESS_CHARS = 500
PHONE_CHARS = 32
CODE_CHARS = 64  # codes and identifiers: occupation, benefit item, role, event type
REFERENCE_CHARS = 200  # references to paper: decrees, payment orders, documents, key ids
NOTE_CHARS = 1000  # free text: reasons, notes
DECISION_CHARS = 4000  # a decision in words, written by the rules: a sentence per benefit item
SEALED_CHARS = 65_536  # base64 of sealed personal data: the largest (20 heirs) is ~27,000

# The largest envelope a consumer reads before trusting it, and so the largest the store appends
# (whatever larger record a topic would take): what is stored can always be consumed.
MAX_ENVELOPE_BYTES = 256 * 1024

MAX_HEIRS = 20
MAX_CHILDREN = 10
MAX_DOCUMENTS = 50
MAX_BENEFIT_ITEMS = 32

# NFC composes, so a text typed decomposed (a letter and its accents apart) is longer before
# normalisation than after: at most this many times for the scripts in use. Longer raw input is
# refused before it is normalised or scanned.
_DECOMPOSED_SLACK = 4
_REFUSED_CATEGORIES = {
    "Cc": "control character",
    "Cf": "format character",
    "Cs": "surrogate",
    "Zl": "line separator",
    "Zp": "paragraph separator",
}


@dataclass(frozen=True)
class Text:
    """A bounded, normalised text (use through the aliases below, not on its own)."""

    max_length: int
    min_length: int = 1
    multiline: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.clean, core_schema.str_schema())

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}

    def clean(self, value: str) -> str:
        if len(value) > self.max_length * _DECOMPOSED_SLACK:
            raise self._too_long()
        # ASCII is its own NFC form; the check is one pass where normalising is several.
        text = value if value.isascii() else unicodedata.normalize("NFC", value)
        if self.multiline and "\r" in text:
            text = text.replace("\r\n", "\n")
        text = text.strip()
        if len(text) > self.max_length:
            raise self._too_long()
        if len(text) < self.min_length:
            raise PydanticCustomError(
                "text_too_short",
                "should have at least {min_length} visible characters",
                {"min_length": self.min_length},
            )
        # A line break is the one character that does not print that a multiline text may hold.
        shown = text.replace("\n", "") if self.multiline else text
        if not shown.isprintable():
            _refuse_invisible(text, self.multiline)
        return text

    def _too_long(self) -> PydanticCustomError:
        return PydanticCustomError(
            "text_too_long",
            "should have at most {max_length} characters",
            {"max_length": self.max_length},
        )


def _refuse_invisible(text: str, multiline: bool) -> None:
    """Raise for the first character that does not show (``isprintable`` is also false for
    spaces other than U+0020 and for private-use or unassigned code points, which may stay)."""
    for position, char in enumerate(text, start=1):
        if multiline and char == "\n":
            continue
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind is not None:
            name = unicodedata.name(char, "")
            raise PydanticCustomError(
                "text_invisible_character",
                "contains the {kind} U+{code}{name} at character {position}: "
                "control and format characters are not accepted",
                {
                    "kind": kind,
                    "code": f"{ord(char):04X}",
                    "name": f" {name}" if name else "",
                    "position": position,
                },
            )


PersonName = Annotated[str, Text(NAME_CHARS)]
Address = Annotated[str, Text(ADDRESS_CHARS)]
Phone = Annotated[str, Text(PHONE_CHARS)]
Code = Annotated[str, Text(CODE_CHARS)]
Reference = Annotated[str, Text(REFERENCE_CHARS)]
Note = Annotated[str, Text(NOTE_CHARS, multiline=True)]
Reason = Annotated[str, Text(NOTE_CHARS, min_length=3, multiline=True)]
Decision = Annotated[str, Text(DECISION_CHARS, multiline=True)]
# ASCII digits only: a regular expression's \d would also take Arabic-Indic or Devanagari digits.
Nik = Annotated[str, Field(pattern=r"^[0-9]{16}$", examples=["3375014507800003"])]
Base64 = Annotated[
    str, Field(min_length=1, max_length=SEALED_CHARS, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
]
