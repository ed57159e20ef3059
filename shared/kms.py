"""Key-encryption keys (KEKs): the keys that wrap every per-worker data key.

A data key is stored only wrapped (AES-256-GCM under a KEK, bound to its key id), and the KEKs
are never in the database: a copy of the database alone opens nobody's personal data. The
``KeyEncryption`` interface is what a cloud KMS serves in production (its wrap/unwrap calls);
``LocalKeyring`` serves it from a keyring file, a Kubernetes secret mounted as a file locally.

A keyring file is JSON: ``{"current": ID, "keys": {ID: base64 of 32 bytes, ...}}``. New keys are
wrapped under ``current``; the other keys remain to unwrap records not yet rewrapped, so rotating
is: add a KEK and make it current (``berlian keys new-kek``), rewrap every record
(``berlian keys rotate``), then drop the old KEK from the keyring.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.secrets import (
    MissingSecretError,
    local_secret_file,
    missing,
    read_secret_file,
)
from shared.settings import local_development

KEYRING_VARIABLE = "KEY_ENCRYPTION_KEYRING"
NONCE_BYTES = 12
KEK_BYTES = 32


@dataclass(frozen=True)
class WrappedKey:
    """A data key as stored: encrypted under the KEK ``kek_id``."""

    kek_id: str
    blob: bytes


class KeyUnwrapError(ValueError):
    """A wrapped key does not open: wrong KEK, altered, or moved to another key id."""


class KeyEncryption(Protocol):
    """Wraps and unwraps data keys; a cloud KMS in production, a keyring file locally."""

    @property
    def current_kek_id(self) -> str: ...

    async def wrap(self, data_key: bytes, key_id: str) -> WrappedKey: ...

    async def unwrap(self, wrapped: WrappedKey, key_id: str) -> bytes: ...


class KeyringFile(BaseModel):
    current: str = Field(min_length=1, max_length=100)
    keys: dict[str, str] = Field(min_length=1, max_length=100)


class LocalKeyring:
    """KEKs held in memory from a keyring file; no KEK ever leaves this object."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the keyring's current KEK {current!r} is not among its keys")
        for kek_id, kek in keys.items():
            if len(kek) != KEK_BYTES:
                raise ValueError(f"KEK {kek_id!r} is {len(kek)} bytes, not {KEK_BYTES}")
        self._keys = dict(keys)
        self._current = current

    @property
    def current_kek_id(self) -> str:
        return self._current

    @property
    def kek_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def wrap(self, data_key: bytes, key_id: str) -> WrappedKey:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._keys[self._current]).encrypt(nonce, data_key, key_id.encode())
        return WrappedKey(self._current, nonce + sealed)

    async def unwrap(self, wrapped: WrappedKey, key_id: str) -> bytes:
        kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            raise KeyUnwrapError(
                f"the data key {key_id} is wrapped under KEK {wrapped.kek_id!r}, "
                "which is not in the keyring"
            )
        try:
            return AESGCM(kek).decrypt(
                wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:], key_id.encode()
            )
        except InvalidTag:
            raise KeyUnwrapError(
                f"the data key {key_id} does not unwrap under KEK {wrapped.kek_id!r}: "
                "altered or moved from another key id"
            ) from None

    @classmethod
    def from_json(cls, content: bytes, source: str) -> LocalKeyring:
        try:
            parsed = KeyringFile.model_validate_json(content)
            keys = {
                kek_id: base64.b64decode(value, validate=True)
                for kek_id, value in parsed.keys.items()
            }
            return cls(keys, parsed.current)
        except (ValidationError, binascii.Error, ValueError) as error:
            raise MissingSecretError(f"{source} is not a usable keyring: {error}") from None

    @classmethod
    def from_file(cls, path: Path) -> LocalKeyring:
        return cls.from_json(read_secret_file(path, KEYRING_VARIABLE), f"{KEYRING_VARIABLE}={path}")


def new_kek_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"kek-{stamp}-{secrets.token_hex(3)}"


def keyring_json(keys: dict[str, bytes], current: str) -> bytes:
    encoded = {kek_id: base64.b64encode(kek).decode() for kek_id, kek in keys.items()}
    return orjson.dumps({"current": current, "keys": encoded}, option=orjson.OPT_INDENT_2)


def new_keyring_json() -> bytes:
    kek_id = new_kek_id()
    return keyring_json({kek_id: AESGCM.generate_key(bit_length=256)}, kek_id)


def add_kek(path: Path) -> str:
    """Add a new KEK to the keyring file and make it current; the old ones stay to unwrap."""
    content = orjson.loads(read_secret_file(path, KEYRING_VARIABLE))
    parsed = KeyringFile.model_validate(content)
    keys = {kek_id: base64.b64decode(value) for kek_id, value in parsed.keys.items()}
    kek_id = new_kek_id()
    keys[kek_id] = AESGCM.generate_key(bit_length=256)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(keyring_json(keys, kek_id))
    draft.replace(path)
    return kek_id


class KeyEncryptionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    key_encryption_keyring: Path | None = Field(
        default=None,
        description="Keyring file of the key-encryption keys (a mounted Kubernetes secret).",
    )

    def keyring_path(self) -> Path:
        if self.key_encryption_keyring is not None:
            return self.key_encryption_keyring
        if local_development():
            return local_secret_file("kek-keyring.json", new_keyring_json)
        raise missing(KEYRING_VARIABLE, "the key-encryption keyring")


NIK_DIGEST_KEY_MIN_LENGTH = 32


def nik_digest_key(configured: SecretStr, variable: str) -> bytes:
    """The key of the NIK index's digest: configured, or this machine's in local development.

    It is what keeps a digest from being a NIK: a NIK has few enough candidates (region, birth
    date, sex, a serial) to be found from an unkeyed digest by trying them all.
    """
    value = configured.get_secret_value()
    if not value:
        if not local_development():
            raise missing(variable, "the NIK digest key")
        path = local_secret_file("nik-digest-key", lambda: secrets.token_urlsafe(48).encode())
        value = read_secret_file(path, variable).decode().strip()
    if len(value) < NIK_DIGEST_KEY_MIN_LENGTH:
        raise MissingSecretError(
            f"{variable} is {len(value)} characters, fewer than {NIK_DIGEST_KEY_MIN_LENGTH}"
        )
    return value.encode()


def key_encryption_from_environment() -> LocalKeyring:
    return LocalKeyring.from_file(KeyEncryptionSettings().keyring_path())
