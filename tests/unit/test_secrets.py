"""Secrets without usable defaults: outside the local development mode each missing one stops
the start, naming it; key-encryption keys wrap data keys bound to their key id."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from services.enrolment.wiring import EnrolmentSettings
from shared.audit.checkpoints import CheckpointSettings
from shared.kms import (
    KeyEncryptionSettings,
    KeyUnwrapError,
    LocalKeyring,
    add_kek,
    new_keyring_json,
    nik_digest_key,
)
from shared.secrets import MissingSecretError
from shared.settings import (
    ENVIRONMENT_VARIABLE,
    LOCAL_DEVELOPMENT,
    DatabaseSettings,
    MissingSettingError,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def in_earnest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Not the local development mode, and no secret configured."""
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    for variable in (
        "KEY_ENCRYPTION_KEYRING",
        "ENROLMENT_NIK_SECRET",
        "CHECKPOINT_SIGNING_KEY",
        "CHECKPOINT_PUBLIC_KEY",
        "DATABASE_URL",
        "SERVICE_ROLE_PASSWORD",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.usefixtures("in_earnest")
def test_every_missing_secret_stops_the_start_naming_it() -> None:
    with pytest.raises(MissingSecretError, match="KEY_ENCRYPTION_KEYRING is not set"):
        KeyEncryptionSettings().keyring_path()
    with pytest.raises(MissingSecretError, match="ENROLMENT_NIK_SECRET is not set"):
        EnrolmentSettings().nik_digest_key()
    with pytest.raises(MissingSecretError, match="CHECKPOINT_SIGNING_KEY is not set"):
        CheckpointSettings().signing_key()
    with pytest.raises(MissingSecretError, match="CHECKPOINT_PUBLIC_KEY is not set"):
        CheckpointSettings().trusted_signers()


@pytest.mark.usefixtures("in_earnest")
def test_the_documented_database_passwords_are_refused_outside_local_development() -> None:
    with pytest.raises(MissingSettingError, match="SERVICE_ROLE_PASSWORD holds the local stack"):
        DatabaseSettings(
            database_url="postgresql://berlian:real@db/x", service_role_password="berlian"
        )
    with pytest.raises(MissingSettingError, match="DATABASE_URL holds the local stack"):
        DatabaseSettings(
            database_url="postgresql://berlian:berlian@db/x", service_role_password="real"
        )
    accepted = DatabaseSettings(
        database_url="postgresql://berlian:from-a-secret@db:5432/berlian",
        service_role_password="a-real-one-from-a-secret",
    )
    assert accepted.service_role_password == "a-real-one-from-a-secret"


@pytest.mark.usefixtures("in_earnest")
def test_a_short_nik_digest_key_is_refused() -> None:
    with pytest.raises(MissingSecretError, match="fewer than 32"):
        nik_digest_key(SecretStr("too-short"), "ENROLMENT_NIK_SECRET")
    assert nik_digest_key(SecretStr("k" * 32), "ENROLMENT_NIK_SECRET") == b"k" * 32


def test_local_development_makes_up_each_secret_once_per_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, LOCAL_DEVELOPMENT)
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    monkeypatch.delenv("ENROLMENT_NIK_SECRET", raising=False)
    monkeypatch.delenv("KEY_ENCRYPTION_KEYRING", raising=False)
    first = EnrolmentSettings().nik_digest_key()
    assert first == EnrolmentSettings().nik_digest_key()
    assert b"local-development" not in first  # generated, not a published value
    path = KeyEncryptionSettings().keyring_path()
    assert path.stat().st_mode & 0o077 == 0
    assert LocalKeyring.from_file(path).current_kek_id.startswith("kek-")


async def test_a_wrapped_key_opens_only_under_its_kek_and_for_its_own_key_id() -> None:
    kms = LocalKeyring({"kek-a": AESGCM.generate_key(bit_length=256)}, "kek-a")
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = await kms.wrap(data_key, "worker-1")
    assert wrapped.kek_id == "kek-a"
    assert data_key not in wrapped.blob
    assert await kms.unwrap(wrapped, "worker-1") == data_key
    with pytest.raises(KeyUnwrapError, match="moved from another key id"):
        await kms.unwrap(wrapped, "worker-2")
    other = LocalKeyring({"kek-a": AESGCM.generate_key(bit_length=256)}, "kek-a")
    with pytest.raises(KeyUnwrapError, match="does not unwrap"):
        await other.unwrap(wrapped, "worker-1")


def test_a_new_kek_becomes_current_and_the_old_ones_stay(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(new_keyring_json())
    before = LocalKeyring.from_file(path)
    added = add_kek(path)
    after = LocalKeyring.from_file(path)
    assert after.current_kek_id == added
    assert after.kek_ids == before.kek_ids | {added}


def test_a_keyring_that_is_not_one_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text('{"current": "kek-x", "keys": {"kek-y": "AAAA"}}')
    with pytest.raises(MissingSecretError, match="is not a usable keyring"):
        LocalKeyring.from_file(path)
