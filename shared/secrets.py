"""Secrets come from the environment (a Kubernetes secret mounted or injected), never from a
published default.

Only in the explicit local development mode (``BERLIAN_ENV=local-development``, which the
``./berlian`` script sets for the local stack) may a missing secret be made up: it is generated
once per machine under ``$BERLIAN_HOME/run/secrets`` (mode 0600) and reused, so it is never a
value anybody else knows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from shared.settings import (
    ENVIRONMENT_VARIABLE,
    LOCAL_DEVELOPMENT,
    MissingSettingError,
)

# A secret is a key or a small key file; anything larger is not one.
MAX_SECRET_FILE_BYTES = 64 * 1024


class MissingSecretError(MissingSettingError):
    """A secret needed to start is not configured or not usable; the message names it."""


def local_secrets_folder() -> Path:
    home = Path(os.environ.get("BERLIAN_HOME", str(Path.home() / ".cache" / "berlian")))
    return home / "run" / "secrets"


def missing(variable: str, what: str) -> MissingSecretError:
    return MissingSecretError(
        f"{variable} is not set: {what} has no default outside the local development mode "
        f"({ENVIRONMENT_VARIABLE}={LOCAL_DEVELOPMENT})"
    )


def local_secret_file(name: str, generate: Callable[[], bytes]) -> Path:
    """This machine's development secret ``name``, generated on first use.

    Concurrent first uses agree: the file appears complete (written aside, then linked) and the
    first one linked wins.
    """
    folder = local_secrets_folder()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if path.exists():
        return path
    draft = folder / f".{name}.{secrets.token_hex(8)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(generate())
    try:
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink()
    return path


def read_secret_file(path: Path, variable: str) -> bytes:
    """A secret file's bytes, refused when it is not a file or not the size of a secret."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise MissingSecretError(f"{variable}={path} cannot be read: {error.strerror}") from None
    if size > MAX_SECRET_FILE_BYTES:
        raise MissingSecretError(
            f"{variable}={path} is {size} bytes, more than a secret ({MAX_SECRET_FILE_BYTES})"
        )
    return path.read_bytes()
