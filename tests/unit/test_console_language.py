"""The console's language: every message it shows has its Indonesian translation, with the
same placeholders; amounts, dates and codes are written the Indonesian way; lists arrive in the
formats Indonesian spreadsheets save."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.console.app import listed
from services.console.catalogue import messages, untranslated
from services.console.i18n import (
    catalogue_path,
    kelurahan_name,
    long_date,
    occupation_name,
    rupiah,
    translations,
)
from services.console.listings import download
from services.console.refusals import translated

pytestmark = pytest.mark.unit


def test_every_message_of_the_templates_and_code_has_an_indonesian_translation() -> None:
    used = messages()
    assert len(used) > 100  # the extraction found the templates' messages
    assert untranslated(used, catalogue_path("id")) == []


def test_a_template_string_without_its_translation_is_reported(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "new.html.j2").write_text(
        '<h1>{{ _("Register a worker") }}</h1><p>{{ _("A label nobody translated") }}</p>'
    )
    missing = untranslated(messages(tmp_path), catalogue_path("id"))
    assert missing == ["'A label nobody translated' (templates/new.html.j2:1)"]


def test_amounts_dates_and_names_as_indonesian_writes_them() -> None:
    assert rupiah(16_800, "id") == "Rp16.800"
    assert rupiah(42_000_000, "id") == "Rp42.000.000"
    assert rupiah(16_800, "en") == "Rp16,800"
    assert long_date("2024-11-18", "id") == "18 November 2024"
    assert long_date("2025-02-10", "id") == "10 Februari 2025"
    assert occupation_name("sopir_angkot", "id") == "Sopir angkot"
    assert occupation_name("sopir_angkot", "en") == "minibus driver"
    assert kelurahan_name("33.75.01.1004") == "Sapuro Kebulen"


def test_a_service_refusal_is_said_again_in_indonesian_with_its_numbers() -> None:
    indonesian = translations("id")
    said = translated("declared M, but the NIK encodes F", indonesian)
    assert said.startswith("Jenis kelamin yang diisi M, tetapi NIK menunjukkan F")
    unknown = translated("something new", indonesian)
    assert unknown == "Layanan menolak: something new"


def test_a_download_writes_what_the_page_lists_in_the_users_language() -> None:
    invoice = {
        "period": "2024-11",
        "supplementary": False,
        "lines": 1200,
        "total": 20_160_000,
        "issued_at": "2024-12-01T02:00:00Z",
        "paid_on": "2024-12-10",
        "payment_ref": "SP2D 00123/2024",
    }
    sheet = download(listed("id", "invoices", [invoice], "tagihan"), "csv")
    assert sheet.headers["content-disposition"].endswith('filename="tagihan.csv"')
    text = bytes(sheet.body).decode("utf-8-sig")
    header, row = text.splitlines()[:2]
    assert header.startswith("Bulan")
    assert "tidak" in row
    assert "1.200" in row
    assert "Rp20.160.000" in row
    assert "10 Desember 2024" in row
