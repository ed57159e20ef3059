"""Bounded input: every text and list of the contracts has a bound the schemas state, texts are
normalised and refused when they hold what does not show, and the largest event the bounds allow
can always be published."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ValidationError

from contract.events.claims import ChildPersonal, ChildrenPersonal, ClaimantPersonal, ClaimFiled
from contract.events.enrolment import Heir, WorkerDetailsCorrected, WorkerPersonal, WorkerRegistered
from contract.events.schemas import generated_schemas
from contract.policy import policy_book
from services.claims.benefits import Child
from services.claims.domain import Approved, Claim, Death, Facts, decide_claim
from services.enrolment.imports import (
    COLUMNS,
    MAX_CELL_CHARS,
    CsvReader,
    CsvRow,
    ImportFileError,
    registration_from,
)
from services.specs import documents
from shared.auth import AuthSettings
from shared.bounds import (
    ADDRESS_CHARS,
    DECISION_CHARS,
    MAX_CHILDREN,
    MAX_DOCUMENTS,
    MAX_HEIRS,
    NAME_CHARS,
    PHONE_CHARS,
    REFERENCE_CHARS,
    SEALED_CHARS,
)
from shared.eventstore.store import EnvelopeTooLargeError
from shared.http import service_app
from shared.sealing import seal
from shared.settings import KafkaSettings

pytestmark = pytest.mark.unit
BOOK = policy_book()

NIK = "3375014507800003"
# A character that takes four bytes in UTF-8: the longest a text of a given length can be.
WIDEST = "\U0001d400"
# Everything of an envelope but its data, at the bounds of its own fields.
ENVELOPE_FIELDS_BYTES = 4096


def worker_with(heirs: list[Any]) -> WorkerPersonal:
    return WorkerPersonal(nik=NIK, full_name="Siti", address="Medono", heirs=heirs)


def problems(error: pytest.ExceptionInfo[ValidationError]) -> list[tuple[tuple[Any, ...], str]]:
    return [(tuple(e["loc"]), e["type"]) for e in error.value.errors()]


@pytest.mark.parametrize(
    "text",
    [
        "Siti\x00",  # NUL
        "Siti \x1b[2J\x1b[31mroot",  # a terminal escape: clear the screen, turn red
        "Siti\x9b31m",  # C1 control sequence introducer
        "Siti \u202eharam",  # right-to-left override
        "\u200b\u200b",  # zero-width spaces only
        "Si\u200dti",  # zero-width joiner
        "Siti\ufeff",  # byte order mark
        "Siti\u2028Aminah",  # line separator
        "Siti\nAminah",  # a line break in a name
        "Siti\ud800",  # a lone surrogate
    ],
)
def test_a_name_with_what_does_not_show_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        worker_with([{"name": text, "relationship": "spouse"}])
    assert problems(refused) == [(("heirs", 0, "name"), "text_invisible_character")]
    assert "control and format characters are not accepted" in str(refused.value)


def test_the_refusal_names_the_character_and_where_it_is() -> None:
    with pytest.raises(ValidationError, match=r"U\+202E RIGHT-TO-LEFT OVERRIDE at character 5"):
        Heir(name="Siti\u202eharam", relationship="spouse")


def test_a_megabyte_heir_name_is_refused_before_it_is_read() -> None:
    with pytest.raises(ValidationError) as refused:
        worker_with([{"name": "x" * 2**20, "relationship": "spouse"}])
    assert problems(refused) == [(("heirs", 0, "name"), "text_too_long")]
    assert f"at most {NAME_CHARS} characters" in str(refused.value)


def test_texts_are_normalised_to_nfc_and_stripped() -> None:
    decomposed = "  Sri Ra\u0301hayu\u0300  "  # accents as separate code points, padded
    heir = Heir(name=decomposed, relationship="child")
    assert heir.name == "Sri R\u00e1hay\u00f9"


def test_a_decomposed_name_counts_its_characters_after_normalisation() -> None:
    at_the_bound = "e\u0301" * NAME_CHARS  # 400 code points, 200 characters once composed
    assert Heir(name=at_the_bound, relationship="child").name == "\u00e9" * NAME_CHARS


def test_a_blank_name_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        Heir(name=" \u3000 ", relationship="child")
    assert problems(refused) == [(("name",), "text_too_short")]


def test_notes_may_hold_line_breaks_but_nothing_else_invisible() -> None:
    worker = uuid.uuid4()
    corrected = WorkerDetailsCorrected(worker_id=worker, reason="Salah ketik\r\nnama ibu")
    assert corrected.reason == "Salah ketik\nnama ibu"
    with pytest.raises(ValidationError) as refused:
        WorkerDetailsCorrected(worker_id=worker, reason="Salah ketik\tnama")
    assert problems(refused) == [(("reason",), "text_invisible_character")]


@pytest.mark.parametrize(
    "digits",
    [
        "\u0663\u0663\u0667\u0665\u0660\u0661\u0664\u0665\u0660\u0667\u0668\u0660\u0660\u0660\u0660\u0663",
        NIK.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        NIK.translate(str.maketrans("0123456789", "०१२३४५६७८९")),
    ],
)
def test_an_heir_nik_in_digits_of_another_script_is_refused(digits: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Heir(name="Aminah", relationship="spouse", nik=digits)
    assert problems(refused) == [(("nik",), "string_pattern_mismatch")]
    with pytest.raises(ValidationError):
        ClaimantPersonal(name="Aminah", relationship="spouse", nik=digits)


def test_lists_are_bounded() -> None:
    with pytest.raises(ValidationError) as refused:
        worker_with([Heir(name="Aminah", relationship="child")] * (MAX_HEIRS + 1))
    assert problems(refused) == [(("heirs",), "too_long")]


def _strings_and_arrays(schema: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        if schema.get("type") in ("string", "array"):
            yield path, schema
        for key, value in schema.items():
            yield from _strings_and_arrays(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _strings_and_arrays(value, f"{path}[{index}]")


def _unbounded(schema: dict[str, Any]) -> bool:
    if schema["type"] == "array":
        return "maxItems" not in schema
    return not ({"maxLength", "pattern", "enum", "const", "format"} & set(schema))


def test_every_text_and_list_of_every_event_schema_states_its_bound() -> None:
    unbounded = [
        f"{name}{path}"
        for name, schema in generated_schemas().items()
        for path, field in _strings_and_arrays(schema, "")
        if _unbounded(field)
    ]
    assert unbounded == []


def _request_schemas(document: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The schemas of every request body and parameter, with the components they refer to."""
    components = document.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def resolve(schema: Any) -> Iterator[Any]:
        yield schema
        text = orjson.dumps(schema).decode()
        for name in components:
            if f'"#/components/schemas/{name}"' in text and name not in seen:
                seen.add(name)
                yield from resolve(components[name])

    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            parts = [operation.get("requestBody", {}), operation.get("parameters", [])]
            for schema in resolve(parts):
                yield f"{method.upper()} {path}", schema


def test_every_text_and_list_a_request_can_send_states_its_bound() -> None:
    unbounded = [
        f"{name}: {operation}{path}"
        for name, document in documents().items()
        if name.endswith(".openapi.json")
        for operation, schema in _request_schemas(document)
        for path, field in _strings_and_arrays(schema, "")
        # a CSV import's body is bounded in bytes before it is read, then row by row
        if _unbounded(field) and operation != "POST /imports"
    ]
    assert unbounded == []


def _sealed(personal: BaseModel) -> dict[str, Any]:
    return seal(personal, f"worker-{uuid.uuid4()}", bytes(32)).model_dump()


def _largest_worker() -> WorkerPersonal:
    return WorkerPersonal(
        nik=NIK,
        full_name=WIDEST * NAME_CHARS,
        address=WIDEST * ADDRESS_CHARS,
        phone=WIDEST * PHONE_CHARS,
        heirs=[
            Heir(name=WIDEST * NAME_CHARS, relationship="named_in_will", nik=NIK)
            for _ in range(MAX_HEIRS)
        ],
    )


def test_the_largest_personal_data_fits_its_sealed_bound() -> None:
    sealed = _sealed(_largest_worker())
    assert len(sealed["ciphertext"]) <= SEALED_CHARS
    assert base64.b64decode(sealed["ciphertext"])


def test_the_largest_registration_and_claim_fit_in_a_record_of_the_topic() -> None:
    limit = KafkaSettings().max_envelope_bytes
    worker = uuid.uuid4()
    registration = WorkerRegistered.model_validate(
        {
            "worker_id": worker,
            "personal": _sealed(_largest_worker()),
            "birth_date": "1980-01-01",
            "sex": "F",
            "occupation_code": WIDEST * 64,
            "kelurahan_code": "33.75.01.1004",
            "kecamatan_code": "33.75.01",
            "insured_income": 1_000_000,
            "source": {"channel": "import", "batch_id": "0" * 16, "row": 100_001},
        }
    )
    children = ChildrenPersonal(
        children=[
            ChildPersonal(name=WIDEST * NAME_CHARS, birth_date="2010-01-01", school_level="SMA")
            for _ in range(MAX_CHILDREN)
        ]
    )
    claimant = ClaimantPersonal(
        name=WIDEST * NAME_CHARS, relationship="spouse", nik=NIK, bank_account=WIDEST * 64
    )
    claim = ClaimFiled.model_validate(
        {
            "claim_id": uuid.uuid4(),
            "worker_id": worker,
            "benefit": "JKM",
            "kind": "scholarship",
            "incident_date": "2025-01-01",
            "claimant": _sealed(claimant),
            "children": _sealed(children),
            "documents": [WIDEST * REFERENCE_CHARS] * MAX_DOCUMENTS,
        }
    )
    for event in (registration, claim):
        assert len(event.model_dump_json()) + ENVELOPE_FIELDS_BYTES < limit


def _csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def read_rows(text: str) -> list[CsvRow]:
    """The rows of a file read in one piece."""
    reader = CsvReader()
    return reader.feed(text.encode()) + reader.close()


HEADER = ",".join(COLUMNS)
ROW = f"{NIK},Siti,1980-07-05,F,tukang_becak,33.75.01.1004,Medono,,Aminah,spouse"


def test_a_header_naming_a_column_twice_is_refused_whole() -> None:
    with pytest.raises(ImportFileError, match=r"column 'nik' twice \(columns 1 and 11\)"):
        list(read_rows(_csv(HEADER + ",NIK ", ROW + f",{NIK[:-1]}9")))


def test_blank_lines_are_no_rows_and_rows_keep_their_spreadsheet_numbers() -> None:
    rows = list(read_rows(_csv(HEADER, "", ROW, ",,,,,,,,,", "  ", ROW)))
    assert [row.number for row in rows] == [3, 6]


def test_blank_lines_do_not_count_towards_the_row_limit() -> None:
    assert len(list(read_rows(_csv(HEADER, *[""] * 100_001, ROW)))) == 1


def test_a_row_with_a_cell_beyond_its_bound_or_more_cells_than_columns_is_refused() -> None:
    huge = ROW.replace("Aminah", "A" * (MAX_CELL_CHARS + 1))
    extra = ROW + ",surplus"
    rows = list(read_rows(_csv(HEADER, huge, extra)))
    assert rows[0].problems == (f"heir_name: over {MAX_CELL_CHARS:,} characters",)
    assert rows[0].cells == {}
    assert rows[1].problems == ("row: 11 cells, but the header names 10 columns",)


def test_a_row_whose_heir_name_is_too_long_is_refused_naming_the_column() -> None:
    (row,) = read_rows(_csv(HEADER, ROW.replace("Aminah", "A" * (NAME_CHARS + 1))))
    with pytest.raises(ValueError, match=f"heir_name: should have at most {NAME_CHARS} characters"):
        registration_from(row.cells, "0" * 16, row.number)
    (row,) = read_rows(_csv(HEADER, ROW.replace("Siti", "Siti\u202e")))
    with pytest.raises(ValueError, match="full_name: contains the format character U\\+202E"):
        registration_from(row.cells, "0" * 16, row.number)


async def test_an_envelope_too_large_is_a_422_naming_its_largest_field() -> None:
    router = APIRouter()

    @router.post("/probe")
    async def probe() -> None:
        raise EnvelopeTooLargeError("ClaimFiled", 2_000_000, 1_032_204, "documents")

    app = service_app("probe", "probe", AuthSettings(), router, None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        answer = await client.post("/probe")
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["field"] == "documents"
    assert "nothing was recorded" in answer.json()["detail"]


def test_the_longest_decision_the_rules_write_fits_its_bound() -> None:
    children = tuple(Child(f"child-{n}", date(2021, 1, 1), "TK") for n in range(MAX_CHILDREN))
    claim = Claim(
        claim_id=uuid.uuid4(),
        worker_id=uuid.uuid4(),
        benefit="JKK",
        kind="scholarship",
        incident_date=date(2025, 7, 20),
        filed_on=date(2025, 8, 1),
        children=children,
    )
    decision = decide_claim(claim, Facts("ACTIVE", 40, (), Death("JKK", date(2025, 7, 20))), BOOK)
    assert isinstance(decision, Approved)
    assert len(decision.note) <= DECISION_CHARS / 2


def test_a_refused_row_names_its_columns_and_problems_never_its_cells() -> None:
    nik_like = "3375014507800011"
    junk_header = f"{HEADER},{nik_like}{'x' * 40}"
    junk = ",".join(
        [
            "33750145078000119",
            "Siti\u202e" + nik_like,
            "A" * 300,
            nik_like,
            nik_like,
            "x" * 10,
            nik_like,
            nik_like,
            nik_like + "\u200b",
            "spouse",
            nik_like * 70,
        ]
    )
    (row,) = read_rows(_csv(junk_header, junk))
    assert row.problems == (f"column 11: over {MAX_CELL_CHARS:,} characters",)
    (row,) = read_rows(_csv(HEADER, junk.rsplit(",", 1)[0]))
    with pytest.raises(ValueError, match="birth_date: is not a date") as refused:
        registration_from(row.cells, "0" * 16, row.number)
    reasons = str(refused.value)
    for column in ("birth_date", "sex", "nik", "full_name", "heir_name"):
        assert f"{column}: " in reasons
    for cell in (nik_like, "AAAA", "xxxx"):
        assert cell not in reasons
