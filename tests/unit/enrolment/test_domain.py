"""Enrolment's decisions, given past events, when a command, then new events or a refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from contract.events.enrolment import (
    CoverageEnded,
    CoverageStarted,
    RegistrationSource,
    WorkerRegistered,
)
from contract.policy import policy_book
from services.enrolment.domain import (
    Command,
    CorrectDetails,
    EndCoverage,
    RegisterWorker,
    StartCoverage,
    Worker,
    add_months,
    decide,
    evolve,
)
from shared.decisions import RefusedError
from shared.sealing import SealedPersonal

pytestmark = pytest.mark.unit
BOOK = policy_book()
WORKER = uuid.uuid4()
SEALED = SealedPersonal(key_id=f"worker-{WORKER}", alg="AES-256-GCM", ciphertext="c2VhbGVk")
AT = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)


def register(**changes: object) -> RegisterWorker:
    fields: dict[str, object] = {
        "worker_id": WORKER,
        "nik": "3375014507800003",
        "personal": SEALED,
        "birth_date": date(1980, 7, 5),
        "sex": "F",
        "occupation_code": "buruh_batik",
        "kelurahan_code": "33.75.01.1004",
        "source": RegistrationSource(channel="api"),
        "at": AT,
    }
    fields.update(changes)
    return RegisterWorker(**fields)  # type: ignore[arg-type]


def start(
    start_date: date = date(2024, 12, 1), months: int = 12, **changes: object
) -> StartCoverage:
    fields: dict[str, object] = {
        "worker_id": WORKER,
        "coverage_id": uuid.uuid4(),
        "membership_no": "00000000018",
        "cohort": "regular",
        "fiscal_year": start_date.year,
        "cover_months": months,
        "start_date": start_date,
        "decree_ref": "SK Wali Kota 400/123/2024",
        "at": AT,
    }
    fields.update(changes)
    return StartCoverage(**fields)  # type: ignore[arg-type]


def given(*commands: Command) -> Worker:
    """The worker after these commands' events, folded with ``evolve``."""
    worker = Worker()
    for command in commands:
        for decided in decide(command, worker, BOOK):
            worker = evolve(worker, decided.data)
    return worker


def test_registering_records_the_worker_with_derived_kecamatan_and_policy_values() -> None:
    [decided] = decide(register(), Worker(), BOOK)

    assert decided.event_type == "WorkerRegistered"
    assert decided.policy_version == "2023.1"
    assert decided.schema_version == 2
    assert isinstance(decided.data, WorkerRegistered)
    assert decided.data.kecamatan_code == "33.75.01"
    assert decided.data.insured_income == 1_000_000


def test_every_problem_of_a_registration_is_named_at_once() -> None:
    with pytest.raises(RefusedError) as refused:
        decide(
            register(
                nik="3375013207800000", occupation_code="dukun", kelurahan_code="33.75.09.1001"
            ),
            Worker(),
            BOOK,
        )

    fields = {p.field for p in refused.value.problems}
    assert fields == {"nik", "occupation_code", "kelurahan_code"}


def test_registering_twice_is_a_conflict() -> None:
    with pytest.raises(RefusedError) as refused:
        decide(register(), given(register()), BOOK)
    assert refused.value.conflict


def test_a_category_added_in_2023_is_refused_under_the_2022_catalogue() -> None:
    with pytest.raises(RefusedError, match="occupation_code"):
        decide(register(at=datetime(2022, 9, 1, tzinfo=UTC)), Worker(), BOOK)


def test_a_correction_is_checked_by_the_same_rules() -> None:
    worker = given(register())

    with pytest.raises(RefusedError, match="birth_date"):
        decide(
            CorrectDetails(
                WORKER, "typo in birth date", "3375014507800003", AT, birth_date=date(1980, 7, 6)
            ),
            worker,
            BOOK,
        )
    [fixed] = decide(
        CorrectDetails(
            WORKER, "moved house", "3375014507800003", AT, kelurahan_code="33.75.02.1004"
        ),
        worker,
        BOOK,
    )
    assert fixed.data.model_dump(exclude_none=True)["kecamatan_code"] == "33.75.02"


def test_a_correction_that_changes_nothing_decides_no_event() -> None:
    worker = given(register())
    same = CorrectDetails(
        WORKER,
        "checked again",
        "3375014507800003",
        AT,
        birth_date=date(1980, 7, 5),
        sex="F",
        occupation_code="buruh_batik",
        kelurahan_code="33.75.01.1004",
    )

    assert decide(same, worker, BOOK) == []


def test_a_correction_records_only_what_differs() -> None:
    worker = given(register())
    [decided] = decide(
        CorrectDetails(
            WORKER,
            "new trade",
            "3375014507800003",
            AT,
            sex="F",
            occupation_code="pedagang_keliling",
            kelurahan_code="33.75.01.1004",
        ),
        worker,
        BOOK,
    )

    assert decided.data.model_dump(exclude_none=True, exclude={"worker_id"}) == {
        "reason": "new trade",
        "occupation_code": "pedagang_keliling",
    }


def test_coverage_runs_for_the_designated_months_at_16800_a_month() -> None:
    [decided] = decide(start(), given(register()), BOOK)

    data = decided.data
    assert isinstance(data, CoverageStarted)
    assert (data.start_date, data.end_date) == (date(2024, 12, 1), date(2025, 11, 30))
    assert data.monthly_premium.total == 16_800
    assert (data.monthly_premium.jkk, data.monthly_premium.jkm) == (10_000, 6_800)
    assert data.programmes == ["JKK", "JKM"]


def test_an_incidental_cohort_of_three_months_ends_on_its_last_day() -> None:
    [decided] = decide(start(date(2024, 11, 15), 3, cohort="incidental"), given(register()), BOOK)
    assert isinstance(decided.data, CoverageStarted)
    assert decided.data.end_date == date(2025, 2, 14)


def test_coverage_stops_at_the_end_of_the_month_of_the_66th_birthday() -> None:
    worker = given(register(nik="3375010507590001", birth_date=date(1959, 7, 5), sex="M"))

    [decided] = decide(start(date(2025, 1, 1)), worker, BOOK)

    assert isinstance(decided.data, CoverageStarted)
    assert decided.data.end_date == date(2025, 7, 31)


def test_two_coverages_never_overlap_but_a_renewal_follows_on() -> None:
    worker = given(register(), start(date(2024, 1, 1)))

    with pytest.raises(RefusedError, match="overlaps"):
        decide(start(date(2024, 12, 1)), worker, BOOK)
    [renewal] = decide(start(date(2025, 1, 1), fiscal_year=2025), worker, BOOK)
    assert isinstance(renewal.data, CoverageStarted)


def test_a_death_ends_the_open_coverage_and_marks_the_worker() -> None:
    worker = given(register(), start())

    [decided] = decide(EndCoverage(WORKER, "deceased", date(2025, 3, 2), AT), worker, BOOK)

    assert isinstance(decided.data, CoverageEnded)
    assert decided.data.reason == "deceased"
    after = evolve(worker, decided.data)
    assert after.deceased
    with pytest.raises(RefusedError, match="died"):
        decide(start(date(2026, 1, 1)), after, BOOK)


def test_ending_coverage_on_the_last_day_of_a_cohort_and_not_after() -> None:
    worker = given(register(), start(date(2024, 11, 1), 3, cohort="incidental"))

    [expired] = decide(EndCoverage(WORKER, "expired", date(2025, 1, 31), AT), worker, BOOK)
    assert isinstance(expired.data, CoverageEnded)
    with pytest.raises(RefusedError, match="no open coverage"):
        decide(EndCoverage(WORKER, "expired", date(2025, 2, 1), AT), worker, BOOK)


def test_add_months_handles_month_ends() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 28)
    assert add_months(date(2024, 1, 1), 12) == date(2024, 12, 31)


def test_a_person_turning_18_today_in_pekalongan_registers_at_dawn_wib() -> None:
    # 05:19 WIB on 2 December is still 1 December in UTC.
    dawn = datetime(2026, 12, 1, 22, 19, tzinfo=UTC)
    [decided] = decide(
        register(nik="3375014212080001", birth_date=date(2008, 12, 2), at=dawn), Worker(), BOOK
    )
    assert decided.event_type == "WorkerRegistered"


def test_a_period_cut_at_the_66th_birthday_month_ends_for_the_age_limit() -> None:
    worker = given(
        register(nik="3375010507590001", birth_date=date(1959, 7, 5), sex="M"),
        start(date(2025, 1, 1)),
    )

    [ended] = decide(EndCoverage(WORKER, "expired", date(2025, 7, 31), AT), worker, BOOK)

    assert isinstance(ended.data, CoverageEnded)
    assert ended.data.reason == "age_limit"


def test_a_death_approved_after_the_expiry_job_closed_the_coverage_still_ends_it() -> None:
    worker = given(
        register(),
        start(date(2024, 11, 1)),
        EndCoverage(WORKER, "expired", date(2025, 10, 31), AT),
    )

    [died] = decide(EndCoverage(WORKER, "deceased", date(2025, 9, 14), AT), worker, BOOK)

    assert isinstance(died.data, CoverageEnded)
    assert (died.data.reason, died.data.end_date) == ("deceased", date(2025, 9, 14))
    after = evolve(worker, died.data)
    assert after.deceased
    assert after.coverage_on(date(2025, 10, 1)) is None


def test_a_death_cancels_a_renewal_that_had_not_begun() -> None:
    renewal = start(date(2025, 11, 1), fiscal_year=2025)
    worker = given(register(), start(date(2024, 11, 1)), renewal)

    events = decide(EndCoverage(WORKER, "deceased", date(2025, 9, 14), AT), worker, BOOK)

    ended = {e.data.coverage_id: e.data for e in events if isinstance(e.data, CoverageEnded)}
    assert ended[renewal.coverage_id].reason == "deceased"
    for event in events:
        worker = evolve(worker, event.data)
    assert worker.coverage_on(date(2025, 12, 1)) is None
    assert decide(EndCoverage(WORKER, "deceased", date(2025, 9, 14), AT), worker, BOOK) == []


def test_a_death_after_the_coverage_ended_is_still_recorded() -> None:
    worker = given(
        register(),
        start(date(2024, 11, 1), 3, cohort="incidental"),
        EndCoverage(WORKER, "expired", date(2025, 1, 31), AT),
    )

    [died] = decide(EndCoverage(WORKER, "deceased", date(2025, 1, 31), AT), worker, BOOK)

    assert isinstance(died.data, CoverageEnded)
    assert (died.data.reason, died.data.end_date) == ("deceased", date(2025, 1, 31))
    assert evolve(worker, died.data).deceased
