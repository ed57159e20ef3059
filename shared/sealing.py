"""Personal data, encrypted per worker so that destroying one key erases one person everywhere.

Personal fields are sealed with AES-256-GCM under the worker's own data key *before* the event is
hashed, and the ciphertext is bound to the worker (the key id is the associated data), so it
cannot be moved to another worker's event. Erasing a worker destroys the key: every later read
and replay shows that person's personal fields as erased, while the events, their hashes and
every clear field (dates, amounts, codes) stay as they were.
"""

from __future__ import annotations

import base64
import os
from typing import Literal, TypeVar
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import Base64, Reference

ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12

Personal = TypeVar("Personal", bound=BaseModel)


class SealedPersonal(BaseModel):
    """Personal data encrypted under the worker's own key; erasing the key erases the person."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: Reference
    alg: Literal["AES-256-GCM"]
    ciphertext: Base64 = Field(description="base64 of nonce + ciphertext + tag")


class Erased(BaseModel):
    """What a reader gets for personal data whose key was destroyed."""

    erased: bool = True

    def __str__(self) -> str:
        return "[erased]"


ERASED = Erased()


def key_id_for(worker_id: UUID) -> str:
    return f"worker-{worker_id}"


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(
    personal: BaseModel, key_id: str, key: bytes, nonce: bytes | None = None
) -> SealedPersonal:
    nonce = nonce or os.urandom(NONCE_BYTES)
    plaintext = personal.model_dump_json().encode()
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, key_id.encode())
    return SealedPersonal(
        key_id=key_id, alg=ALGORITHM, ciphertext=base64.b64encode(nonce + ciphertext).decode()
    )


def open_sealed(
    sealed: SealedPersonal, key: bytes | None, model: type[Personal]
) -> Personal | Erased:
    """The personal data, or ERASED when the key no longer exists."""
    if key is None:
        return ERASED
    blob = base64.b64decode(sealed.ciphertext)
    try:
        plaintext = AESGCM(key).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], sealed.key_id.encode()
        )
    except InvalidTag:
        raise ValueError(
            f"personal data under {sealed.key_id} does not decrypt: altered or misplaced"
        ) from None
    return model.model_validate_json(plaintext)
