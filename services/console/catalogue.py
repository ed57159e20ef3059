"""The messages the console shows, as gettext extracts them from its templates and its code:
what the Indonesian catalogue must translate (its test checks that it does)."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

HERE = Path(__file__).resolve().parent
METHODS = [("**/templates/**.j2", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.j2": {"extensions": "jinja2.ext.i18n"}}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
KEYWORDS = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}


def messages(root: Path = HERE) -> dict[str, list[str]]:
    """Each message id of the console under ``root``, with where it is used."""
    found: dict[str, list[str]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        root,
        METHODS,
        OPTIONS,
        KEYWORDS,
        comment_tags=(),
        strip_comment_tags=True,
    ):
        for text in message if isinstance(message, tuple) else (message,):
            if text:
                found.setdefault(text, []).append(f"{filename}:{line}")
    return found


def untranslated(used: dict[str, list[str]], catalogue: Path) -> list[str]:
    """The messages in use that the catalogue does not translate (missing, empty or fuzzy),
    or translates with other placeholders than the English has."""
    with catalogue.open("rb") as source:
        known = {m.id: m for m in read_po(source) if m.id}
    missing = []
    for text, where in used.items():
        entry = known.get(text)
        if (
            entry is None
            or not entry.string
            or entry.fuzzy
            or set(PLACEHOLDER.findall(str(entry.string))) != set(PLACEHOLDER.findall(text))
        ):
            missing.append(f"{text!r} ({', '.join(where)})")
    return missing
