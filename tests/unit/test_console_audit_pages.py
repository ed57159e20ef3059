"""The auditor's pages name what the audit application answers: an event's data as labelled
fields in the user's language (codes by name, amounts in rupiah, sealed data said so, never
the program's text), the figures' columns in words, and the charts' bars the size of their
numbers. The audit API keeps a worker's profile from a role that does not act on people."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from contract.policy.membership import Standing
from services.audit.history import HistoryEntry
from services.audit.web import _event
from services.console.audit_charts import HEIGHT, TICKS, bar_chart, nice_step
from services.console.audit_pages import figure_table
from services.console.audit_words import Words, flat
from services.console.i18n import translations
from services.console.listings import Table, download, shown

pytestmark = pytest.mark.unit
INDONESIAN = Words(translations("id"), "id")
PAID = {
    "worker_id": "8d0c2f4e-0000-4000-8000-000000000001",
    "period": "2024-11",
    "paid_on": "2024-12-10",
    "amount": {"jkk": 8_400, "jkm": 8_400, "total": 16_800},
    "payer": "Pemerintah Kota Pekalongan",
}
REGISTERED = {
    "kelurahan_code": "33.75.01.1004",
    "occupation_code": "sopir_angkot",
    "source": {"channel": "import", "row": 3},
    "personal": "(sealed)",
    "reasons": ["not_resident", "other"],
}


def test_an_events_data_is_written_as_labelled_fields_in_indonesian() -> None:
    assert INDONESIAN.fields(PAID) == [
        ("Bulan", "2024-11"),
        ("Dibayar pada", "10 Desember 2024"),
        (
            "Jumlah",
            [
                ("JKK (kecelakaan kerja)", "Rp8.400"),
                ("JKM (kematian)", "Rp8.400"),
                ("Total", "Rp16.800"),
            ],
        ),
        ("Pembayar", "Pemerintah Kota Pekalongan"),
    ]
    fields = dict(INDONESIAN.fields(REGISTERED))
    assert fields["Kelurahan"] == "Sapuro Kebulen"
    assert fields["Pekerjaan"] == "Sopir angkot"
    assert fields["Sumber"] == [("Saluran", "daftar yang diimpor"), ("Baris", "3")]
    assert fields["Data pribadi"] == "disegel: data pribadi, tidak ditampilkan"
    assert fields["Alasan"] == "Bukan penduduk kelurahan ini, Lainnya (lihat catatan)"
    written = flat(INDONESIAN.fields({**PAID, **REGISTERED}))
    for code in ("sopir_angkot", "33.75.01.1004", "not_resident", "{", "'"):
        assert code not in written, code
    assert INDONESIAN.event("PremiumPaid") == "Iuran dibayar"
    assert INDONESIAN.role("system") == "sistem"
    english = Words(translations("en"), "en")
    assert dict(english.fields(REGISTERED))["Occupation"] == "minibus driver"


def test_a_figure_names_its_columns_and_codes_and_pages_and_downloads_them() -> None:
    figure = {
        "question": "workers by status and cohort",
        "columns": ["status", "cohort", "workers"],
        "rows": [["covered", "regular", 1200], ["registered", "-", 30]],
    }
    table = figure_table("workers", "Pekerja", figure, frozenset(), INDONESIAN)
    assert table.header == ["Status", "Kelompok", "Pekerja"]
    assert table.rows == [["terlindungi", "reguler", "1.200"], ["terdaftar", "tidak ada", "30"]]
    assert table.numeric == frozenset({2})
    long = Table("lag", "Lag", ["N"], [[str(n)] for n in range(60)])
    third = shown(long, "lag", 3, {"on": "18-11-2024"})
    assert (third.page, third.pages, third.rows) == (3, 3, [[str(n)] for n in range(50, 60)])
    assert third.query == "on=18-11-2024&table=lag"
    assert shown(long, "other", 3, {}).page == 1  # the pager asked for another table's page
    sheet = download(table, "csv")
    assert bytes(sheet.body).decode("utf-8-sig").splitlines()[1] == "terlindungi,reguler,1.200"


def test_a_charts_bars_are_the_size_of_their_numbers_on_round_ticks() -> None:
    assert [nice_step(v) for v in (0, 3, 12, 2_016_000)] == [1, 1, 5, 1_000_000]
    chart = bar_chart(
        "premiums",
        "Iuran",
        "Satu batang per kolom",
        ["reguler"],
        ["Ditagih", "Dibayar"],
        [[300.0, 150.0]],
        INDONESIAN.money,
    )
    invoiced, paid = chart.bars
    assert invoiced.height == pytest.approx(2 * paid.height)
    assert invoiced.y + invoiced.height == paid.y + paid.height == chart.base
    assert invoiced.says == "reguler, Ditagih: Rp300"
    assert [t.label for t in chart.ticks] == ["Rp0", "Rp100", "Rp200", "Rp300", "Rp400"]
    assert len(chart.ticks) == TICKS + 1
    assert chart.ticks[-1].y < chart.ticks[0].y < HEIGHT
    assert invoiced.colour != paid.colour


def entry(details: dict[str, object]) -> HistoryEntry:
    moment = datetime(2024, 11, 18, 3, tzinfo=UTC)
    return HistoryEntry(
        "test.enrolment.events",
        0,
        7,
        moment,
        moment,
        "WorkerRegistered",
        "kelurahan_officer:lurah-1",
        "2024.1",
        details,
        date(2024, 11, 18),
        Standing("NOT_COVERED", (), None),
    )


def test_the_audit_api_keeps_the_profile_from_a_role_that_does_not_act_on_people() -> None:
    details = {
        "birth_date": "1980-07-05",
        "sex": "F",
        "occupation_code": "buruh_batik",
        "kelurahan_code": "33.75.01.1004",
        "personal": "(sealed)",
    }
    for_auditor = _event(entry(details), profile=False)
    assert for_auditor.details == {"kelurahan_code": "33.75.01.1004", "personal": "(sealed)"}
    assert (for_auditor.actor_role, for_auditor.actor_id) == ("kelurahan_officer", "lurah-1")
    assert _event(entry(details), profile=True).details == details
