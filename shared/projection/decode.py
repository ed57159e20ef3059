"""Turning a Kafka record into an event a projection may trust, or a reason why not.

A consumer accepts nothing on faith: the value must be JSON, no larger than a real event, sealed
with a hash that recomputes, written by the topic's owner, and of a known type and version whose
data validates. Anything else is dead-lettered with the reason this module gives.

A record whose envelope is sound (hash, producer, envelope fields, a type its producer owns) but
whose data cannot be read (a version or a shape this code does not know yet) names its stream:
the stream is then held back behind it, so no later event of that stream is applied on a gap.
A record that fails before that names no stream it could be trusted about, and holds none back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from shared.bounds import MAX_ENVELOPE_BYTES
from shared.catalogue import EventCatalogue, InvalidEventError, UnknownEventError, parse_envelope
from shared.envelope import Envelope
from shared.hashing import compute_hash


@dataclass(frozen=True)
class ConsumedEvent:
    """An event read from a topic: its envelope, its typed (upcast) data, and where it was."""

    envelope: Envelope
    data: BaseModel
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class StreamPosition:
    stream_id: str
    stream_version: int


class UnprocessableRecordError(Exception):
    """The record cannot be processed; the message says why (it becomes the dead-letter reason).

    ``stream``: the stream the record belongs to, when its envelope could be trusted."""

    def __init__(self, reason: str, stream: StreamPosition | None = None) -> None:
        super().__init__(reason)
        self.stream = stream


def decode(
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    owner: str,
    catalogue: EventCatalogue,
) -> ConsumedEvent:
    if value is None:
        raise UnprocessableRecordError("empty record: no value")
    if len(value) > MAX_ENVELOPE_BYTES:
        raise UnprocessableRecordError(
            f"record of {len(value)} bytes exceeds the {MAX_ENVELOPE_BYTES}-byte limit"
        )
    try:
        raw: Any = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise UnprocessableRecordError(f"value is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise UnprocessableRecordError(
            f"value is JSON {type(raw).__name__}, not an event envelope object"
        )
    claimed = raw.get("hash")
    unsealed = {k: v for k, v in raw.items() if k != "hash"}
    try:
        recomputed = compute_hash(unsealed)
    except (TypeError, ValueError) as error:
        raise UnprocessableRecordError(
            f"envelope cannot be canonicalised for hashing: {error}"
        ) from None
    if claimed != recomputed:
        raise UnprocessableRecordError(
            f"hash mismatch: envelope says {claimed!r}, content hashes to {recomputed}"
        )
    if raw.get("producer") != owner:
        raise UnprocessableRecordError(
            f"event claims producer {raw.get('producer')!r} on {topic}, which only {owner} writes"
        )
    try:
        kind = catalogue.event_type(str(raw.get("event_type")))
        if kind.owner != owner:
            raise UnprocessableRecordError(
                f"event type {kind.name} belongs to {kind.owner}, yet it is on {topic}"
            )
        envelope = parse_envelope(raw)
    except (UnknownEventError, InvalidEventError) as error:
        raise UnprocessableRecordError(str(error)) from None
    try:
        data = catalogue.parse_data(envelope)
    except (UnknownEventError, InvalidEventError) as error:
        position = StreamPosition(envelope.stream_id, envelope.stream_version)
        raise UnprocessableRecordError(str(error), position) from None
    return ConsumedEvent(envelope, data, topic, partition, offset)
