"""The people the benchmarks register: valid and distinct for every number, so that runs and
measurements never collide on a NIK."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date

from services.enrolment.imports import COLUMNS

KRAPYAK = "33.75.03.1002"
BIRTH_DATES = [
    date(1970 + y, 1 + m, 1 + d) for y in range(30) for m in range(12) for d in range(28)
]


def person(number: int) -> dict[str, str]:
    """A valid, distinct person for every ``number`` below 100 million."""
    birth = BIRTH_DATES[number % len(BIRTH_DATES)]
    serial = number // len(BIRTH_DATES) + 1
    return {
        "nik": f"337503{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}",
        "full_name": f"Pekerja {number}",
        "birth_date": birth.isoformat(),
        "sex": "M",
        "occupation_code": "tukang_becak",
        "kelurahan_code": KRAPYAK,
        "address": f"Gang Bench {number}",
    }


def import_chunks(first: int, rows: int, rows_per_chunk: int = 2000) -> Iterator[bytes]:
    """An import file of ``rows`` people from ``first``, made a chunk at a time as it is read:
    a file of any size, never held whole."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for number in range(first, first + rows):
        writer.writerow(
            {**person(number), "heir_name": "Ahli Waris", "heir_relationship": "spouse"}
        )
        if (number - first + 1) % rows_per_chunk == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue().encode()
