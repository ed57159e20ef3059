"""Configuration from the environment, defaulting to the local stack.

The same code runs against a managed Kafka and PostgreSQL in Kubernetes: only these variables
change (see docs/runbook.md). A secret (or an address that decides whom to trust) has no usable
default: its local stack value applies only in the explicit local development mode
(``BERLIAN_ENV=local-development``, which ``./berlian`` and the test suite set); in any other mode
a process refuses to start without it, naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.bounds import MAX_ENVELOPE_BYTES

SERVICES: tuple[str, ...] = ("enrolment", "verification", "billing", "claims")
# Kafka's default message.max.bytes (a broker setting) and so max.message.bytes of a topic.
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
RECORD_FRAMING_BYTES = 8 * 1024
ENVELOPE_MARGIN_BYTES = 8 * 1024
ENVIRONMENT_VARIABLE = "BERLIAN_ENV"
LOCAL_DEVELOPMENT = "local-development"
# The local stack's documented database password: refused outside local development.
DEVELOPMENT_PASSWORD = "berlian"  # noqa: S105 - refused unless BERLIAN_ENV=local-development


def local_development() -> bool:
    """True only when the environment says so explicitly: unset means production."""
    return os.environ.get(ENVIRONMENT_VARIABLE) == LOCAL_DEVELOPMENT


@dataclass(frozen=True)
class LocalDefault:
    """Marks a setting that must be given outside local development; ``value`` is what it is
    on the local stack. Declare the field ``Annotated[str, LocalDefault(...)] = ""`` in a
    ``GuardedSettings`` class: empty means not given."""

    value: str


class MissingSettingError(RuntimeError):
    """A secret or trust setting was not given outside local development: the process must not
    start (raised as is, not as a validation error, so a command can say just this)."""


class GuardedSettings(BaseSettings):
    """Settings whose ``LocalDefault`` fields are filled in local development and required
    everywhere else (before validation, so the local value meets the field's constraints)."""

    @model_validator(mode="before")
    @classmethod
    def _required_outside_local_development(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        missing = []
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            marker = next((m for m in field.metadata if isinstance(m, LocalDefault)), None)
            given = data.get(name)
            if isinstance(given, SecretStr):
                given = given.get_secret_value()
            if marker is None or given:
                continue
            if local_development():
                data = {**data, name: marker.value}
            else:
                missing.append(f"{prefix}{name}".upper())
        if missing:
            raise MissingSettingError(
                f"{', '.join(missing)} must be set: there is no default outside local "
                f"development ({ENVIRONMENT_VARIABLE}={LOCAL_DEVELOPMENT})"
            )
        return data


class KafkaSettings(BaseSettings):
    """Where the brokers are and how topics are named."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    topic_prefix: str = Field(
        default="berlian.",
        description="Prefix of every topic name; one environment or one test run per prefix.",
    )
    topic_partitions: int = Field(default=3, ge=1, description="Partitions per event topic.")
    topic_replication_factor: int = Field(default=1, ge=1)
    topic_min_insync_replicas: int = Field(default=1, ge=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="PLAINTEXT for a local stack; SASL_SSL (or SASL_PLAINTEXT) to log in.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = Field(
        default="", description="The service's Kafka principal (its own name in Berlian)."
    )
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = Field(
        default="",
        description="PEM file of the CA that signed the brokers' certificates (SASL_SSL); "
        "empty for the system's CAs.",
    )

    kafka_max_message_bytes: int = Field(
        default=BROKER_DEFAULT_MAX_MESSAGE_BYTES,
        ge=64 * 1024,
        description="max.message.bytes of the event topics (the broker's default unless the "
        "topics say otherwise): the largest record batch the broker accepts.",
    )

    @property
    def max_record_bytes(self) -> int:
        """The largest key and value a producer sends: the topic's maximum less room for what
        the producer's own check does not count (headers, record and batch framing)."""
        return self.kafka_max_message_bytes - RECORD_FRAMING_BYTES

    @property
    def max_envelope_bytes(self) -> int:
        """The largest envelope the store appends: below the largest record by a safety margin
        (the record key and anything a later header adds), so what is stored can be published,
        and never above what consumers read (``MAX_ENVELOPE_BYTES``), so it can be consumed."""
        return min(self.max_record_bytes - ENVELOPE_MARGIN_BYTES, MAX_ENVELOPE_BYTES)

    @model_validator(mode="after")
    def _credentials_when_logging_in(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    def events_topic(self, service: str) -> str:
        """The topic a service owns and alone writes to."""
        return f"{self.topic_prefix}{service}.events"

    def dead_letter_topic(self, consumer: str) -> str:
        """Where a consumer puts the records it cannot process."""
        return f"{self.topic_prefix}{consumer}.dlq"


class DatabaseSettings(GuardedSettings):
    """The PostgreSQL database; each service works in its own schema under its own role."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    database_url: Annotated[
        str,
        LocalDefault(f"postgresql://berlian:{DEVELOPMENT_PASSWORD}@127.0.0.1:5432/berlian"),
        Field(description="Administrative connection: creates schemas and roles, migrates."),
    ] = ""
    service_role_password: Annotated[
        str,
        LocalDefault(DEVELOPMENT_PASSWORD),
        Field(description="Password of the per-service login roles (berlian_<service>)."),
    ] = ""

    @model_validator(mode="after")
    def _no_development_password_in_earnest(self) -> Self:
        """The documented local password given outside local development is refused like a
        missing one, so a copied local setting cannot leave a database open with it."""
        if local_development():
            return self
        for variable, password in (
            ("SERVICE_ROLE_PASSWORD", self.service_role_password),
            ("DATABASE_URL", urlsplit(self.database_url).password),
        ):
            if password == DEVELOPMENT_PASSWORD:
                raise MissingSettingError(
                    f"{variable} holds the local stack's documented password, refused outside "
                    f"local development ({ENVIRONMENT_VARIABLE}={LOCAL_DEVELOPMENT})"
                )
        return self


class ProducerSettings(GuardedSettings):
    """Where each service that owns a topic answers, for the consumers that ask whether what it
    had committed is published (shared/projection/freshness.py). An address decides whose word
    a decision rests on: required outside local development, the local ports within it."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    enrolment_url: Annotated[str, LocalDefault("http://127.0.0.1:8001"), Field(max_length=300)] = ""
    verification_url: Annotated[
        str, LocalDefault("http://127.0.0.1:8002"), Field(max_length=300)
    ] = ""
    billing_url: Annotated[str, LocalDefault("http://127.0.0.1:8003"), Field(max_length=300)] = ""
    claims_url: Annotated[str, LocalDefault("http://127.0.0.1:8004"), Field(max_length=300)] = ""

    def urls(self) -> dict[str, str]:
        """Each service's base URL, by its name."""
        return {service: getattr(self, f"{service}_url") for service in SERVICES}
