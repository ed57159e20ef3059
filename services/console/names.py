"""Names of the codes that more than one page shows, in words (message ids in English, translated
by the catalogue)."""

from __future__ import annotations

from services.console.refusals import N_

REJECTION_REASONS: dict[str, str] = {
    "not_eligible_age": N_("Age outside the programme's limits"),
    "occupation_not_in_catalogue": N_("Occupation not in the catalogue"),
    "not_resident": N_("Not resident in the kelurahan"),
    "duplicate_person": N_("Already registered as another worker"),
    "already_covered": N_("Already covered by BPJS Ketenagakerjaan"),
    "documents_incomplete": N_("Documents incomplete"),
    "other": N_("Other (see the note)"),
}
ROLE_NAMES = {
    "kelurahan_officer": N_("Kelurahan officer"),
    "kecamatan_officer": N_("Kecamatan officer"),
    "city_admin": N_("City administrator"),
    "billing_officer": N_("Billing officer"),
    "claims_officer": N_("Claims officer"),
    "auditor": N_("Auditor"),
}
# A worker's standing on a day (contract.policy.membership), in words.
STANDINGS = {
    "ACTIVE": N_("active: the month is paid"),
    "GRACE": N_("in the grace months"),
    "INACTIVE": N_("inactive: unpaid past the grace months"),
    "NOT_COVERED": N_("not covered on that day"),
}
