"""The key commands never use a secret generated for this machine's local stack on another
machine's database: they are refused, naming the variable to set, before connecting."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.keys_cli import secrets_fit_database
from shared.kms import new_keyring_json
from shared.settings import DatabaseSettings

REMOTE = "postgresql://berlian_admin:s3cret-elsewhere@db.city.example:5432/berlian"
SECRETS = ("KEY_ENCRYPTION_KEYRING", "ENROLMENT_NIK_SECRET", "CHECKPOINT_SIGNING_KEY")


@pytest.fixture
def remote_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERLIAN_ENV", "local-development")
    monkeypatch.setenv("BERLIAN_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", REMOTE)
    for variable in SECRETS:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        (["keys", "rotate"], "KEY_ENCRYPTION_KEYRING"),
        (["keys", "rotate-nik-digest", "--yes"], "ENROLMENT_NIK_SECRET, KEY_ENCRYPTION_KEYRING"),
        (["checkpoint"], "CHECKPOINT_SIGNING_KEY"),
    ],
)
def test_a_generated_local_secret_is_refused_against_another_machines_database(
    remote_database: None, tmp_path: Path, command: list[str], variables: str
) -> None:
    answer = CliRunner().invoke(app, command)
    assert answer.exit_code == 2, answer.output
    assert f"refused: {variables} not set" in answer.output
    assert "db.city.example" in answer.output
    assert not (tmp_path / "run" / "secrets").exists()  # nothing generated either


def test_a_configured_secret_is_not_refused_for_another_machines_database(
    remote_database: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = tmp_path / "keyring.json"
    keyring.write_bytes(new_keyring_json())
    monkeypatch.setenv("KEY_ENCRYPTION_KEYRING", str(keyring))
    secrets_fit_database(DatabaseSettings(), {"KEY_ENCRYPTION_KEYRING": True})
    monkeypatch.setenv("DATABASE_URL", REMOTE.replace("db.city.example", "127.0.0.1"))
    secrets_fit_database(DatabaseSettings(), {"KEY_ENCRYPTION_KEYRING": False})
