"""Erasing a person (UU 27/2022): their key is destroyed, so every copy of their personal data,
on the topics, in projections and in any replay, reads as erased; the digest of their NIK goes
too. Events, hashes and clear fields stay, and the log still verifies."""

from __future__ import annotations

import uuid

from services.enrolment.service import EnrolmentService


async def erase_worker(service: EnrolmentService, worker_id: uuid.UUID) -> bool:
    """True if the worker had a key to destroy."""
    destroyed = await service.keys.destroy(worker_id)
    await service.pool.execute(
        f"DELETE FROM {service.schema}.nik_index WHERE worker_id = $1", worker_id
    )
    return destroyed
