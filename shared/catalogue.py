"""A catalogue of event types: which model reads which event, and how old versions are brought
up to date on read.

The platform reads events through a catalogue it is given (the contract builds its own, see
``contract.events.registry``) and knows no event itself. Consumers always see the current version:
older data is upcast step by step (v1 -> v2 -> ...) before validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.envelope import Envelope

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventError(ValueError):
    """The event type, or that version of it, is not in the contract this code knows."""


class InvalidEventError(ValueError):
    """The envelope or its data does not match the contract."""


@dataclass(frozen=True)
class EventType:
    name: str
    owner: str
    versions: Mapping[int, type[BaseModel]]
    upcasters: Mapping[int, Upcaster]  # from version N to N + 1

    @property
    def current_version(self) -> int:
        return max(self.versions)

    @property
    def model(self) -> type[BaseModel]:
        return self.versions[self.current_version]


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
        for problem in error.errors()
    )


def parse_envelope(raw: Mapping[str, Any]) -> Envelope:
    """Validate an envelope, ignoring fields a newer producer may have added to it."""
    try:
        return Envelope.model_validate(raw, extra="ignore")
    except ValidationError as error:
        raise InvalidEventError(
            f"envelope does not match the contract: {_describe(error)}"
        ) from None


@dataclass(frozen=True)
class EventCatalogue:
    """The event types a system reads, by name. Its models and upcasters are module-level, so
    a catalogue travels to the processes of a parallel rebuild."""

    types: Mapping[str, EventType]

    @classmethod
    def of(cls, types: Iterable[EventType]) -> EventCatalogue:
        return cls({kind.name: kind for kind in types})

    def event_type(self, name: str) -> EventType:
        try:
            return self.types[name]
        except KeyError:
            raise UnknownEventError(f"unknown event type {name!r}") from None

    def upcast(self, name: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` of ``name`` at ``version``, brought to the current version."""
        kind = self.event_type(name)
        if version not in kind.versions:
            raise UnknownEventError(
                f"{name} has no schema version {version} (known: {sorted(kind.versions)})"
            )
        while version < kind.current_version:
            data = kind.upcasters[version](data)
            version += 1
        return data

    def parse_data(self, envelope: Envelope) -> BaseModel:
        """The envelope's data at the current version of its type.

        A tolerant reader: fields this code does not know (a newer producer's new optional
        fields) are ignored, at every depth. Producers stay strict: the models refuse unknown
        fields when an event is built, so nothing unknown is ever written by this code.
        """
        data = self.upcast(envelope.event_type, envelope.schema_version, dict(envelope.data))
        model = self.event_type(envelope.event_type).model
        try:
            return model.model_validate(data, extra="ignore")
        except ValidationError as error:
            raise InvalidEventError(
                f"{envelope.event_type} v{envelope.schema_version} data does not match the "
                f"contract: {_describe(error)}"
            ) from None

    def parse(self, raw: Mapping[str, Any]) -> tuple[Envelope, BaseModel]:
        """Validate an envelope and its data; the data is returned at the current version."""
        envelope = parse_envelope(raw)
        return envelope, self.parse_data(envelope)
