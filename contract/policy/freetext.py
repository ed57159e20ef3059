"""Free text that travels in clear (notes, reasons) must not carry personal numbers.

A note or a reason is recorded in clear on a topic, where erasing a person (destroying their
key) cannot reach it. Text that holds a NIK-like number (16 digits, possibly grouped by spaces,
dots or dashes, in any script's digits) is refused, naming the field; text that is personal by
nature (a claim's document titles, "Akta Kematian a.n. ...") is sealed under the worker's key
instead (see ``contract.events.claims.ClaimDocuments``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

NIK_LIKE = re.compile(r"(?<!\d)\d(?:[ .\-/]?\d){15}(?!\d)")


def without_personal_numbers(text: str) -> str:
    """``text`` unchanged, or ValueError when it holds a NIK-like number."""
    if NIK_LIKE.search(unicodedata.normalize("NFKC", text)):
        raise ValueError(
            "holds a NIK-like number (16 digits); free text is kept in clear, so write no "
            "personal numbers in it"
        )
    return text


# Added to a text type's own bounds: ``Annotated[Note, CLEAR_TEXT]``.
CLEAR_TEXT = AfterValidator(without_personal_numbers)
ClearText = Annotated[str, CLEAR_TEXT]
