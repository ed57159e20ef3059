"""Checking hash chains: every event recomputes, links to its predecessor, nothing is missing
and, within a partition, nothing arrives out of order.

The checker is fed events in log order (per partition, offset order) and reports each finding
with the event's location (topic, partition, offset) and its stream position. A record the
relay republished after a crash (same stream version, same hash) is a harmless duplicate, not a
finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from shared.envelope import GENESIS_HASH
from shared.hashing import compute_hash

FindingKind = Literal[
    "hash_mismatch",  # the content does not hash to the recorded hash: altered
    "broken_link",  # prev_hash is not the previous event's hash
    "gap",  # stream versions are missing: deleted
    "out_of_order",  # a version arrived after a later one of its stream in the same partition
    "conflicting_version",  # two different events claim the same stream version
    "unreadable",  # not an envelope at all
    "store_differs",  # the store holds other bytes for the event than the topic
    "missing_on_topic",  # in the store (and published) but not on the topic
    "missing_in_store",  # on the topic but not in the store
    "checkpoint_invalid",  # a signature does not verify, or a checkpoint is missing or unlinked
    "checkpoint_mismatch",  # a signed stream head is not what the store or the topic holds
    "no_checkpoint",  # events, but no signed checkpoint to pin them
]


class Location(NamedTuple):  # a tuple: made for every record, and sent between processes
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    location: Location
    stream_id: str | None
    stream_version: int | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.stream_id} v{self.stream_version}" if self.stream_id else "-"
        return f"{self.kind} at {self.location} ({where}): {self.detail}"


class _Seen(NamedTuple):
    hash: str
    prev_hash: str
    location: Location


class Run(NamedTuple):
    """Consecutive versions of one stream, each linked to the one before it. A checker sums a
    stream up as its runs; the links between runs are what is left to check, also when the
    runs come from checkers that read different partitions."""

    first_version: int
    first_prev_hash: str
    first_location: Location
    last_version: int
    last_hash: str


@dataclass(repr=False)  # its repr would hold every event
class ChainChecker:
    """Feed envelopes in log order with :meth:`check`, then call :meth:`finish`."""

    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    _streams: dict[str, dict[int, _Seen]] = field(default_factory=dict)
    _latest: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def check(self, envelope: Mapping[str, Any], location: Location) -> None:
        self.events += 1
        try:
            stream_id = str(envelope["stream_id"])
            version = int(envelope["stream_version"])
            unsealed = dict(envelope)
            claimed = str(unsealed.pop("hash"))
            prev_hash = str(envelope["prev_hash"])
            recomputed = compute_hash(unsealed)
        except (KeyError, TypeError, ValueError) as error:
            self._report("unreadable", location, None, None, f"not a sealed envelope: {error!r}")
            return
        if recomputed != claimed:
            self._report(
                "hash_mismatch",
                location,
                stream_id,
                version,
                f"content hashes to {recomputed}, the event says {claimed}",
            )
        seen = self._streams.setdefault(stream_id, {})
        if version in seen:
            if seen[version].hash == claimed:
                self.duplicates += 1
            else:
                self._report(
                    "conflicting_version",
                    location,
                    stream_id,
                    version,
                    f"version {version} already at {seen[version].location} with another hash",
                )
            return
        order_key = (stream_id, location.topic, location.partition)
        latest = self._latest.get(order_key, 0)
        if version < latest:
            self._report(
                "out_of_order",
                location,
                stream_id,
                version,
                f"arrived after version {latest} of the same stream in this partition",
            )
        self._latest[order_key] = max(latest, version)
        seen[version] = _Seen(claimed, prev_hash, location)

    def finish(self) -> list[Finding]:
        """Check links and completeness of every stream; return all findings."""
        self.findings += link_runs(self.runs())
        return self.findings

    def runs(self) -> dict[str, list[Run]]:
        """Every stream's versions as runs, in version order."""
        streams = {}
        for stream_id, seen in self._streams.items():
            runs: list[Run] = []
            for version in sorted(seen):
                event = seen[version]
                last = runs[-1] if runs else None
                if last and version == last.last_version + 1 and event.prev_hash == last.last_hash:
                    runs[-1] = Run(*last[:3], version, event.hash)
                else:
                    runs.append(Run(version, event.prev_hash, event.location, version, event.hash))
            streams[stream_id] = runs
        return streams

    def _report(
        self,
        kind: FindingKind,
        location: Location,
        stream_id: str | None,
        version: int | None,
        detail: str,
    ) -> None:
        self.findings.append(Finding(kind, location, stream_id, version, detail))


def link_runs(streams: Mapping[str, list[Run]]) -> list[Finding]:
    """A gap or a broken link wherever a stream's run does not follow the run before it (the
    first from the genesis hash); ``streams``' runs in version order, none overlapping."""
    findings = []
    for stream_id, runs in streams.items():
        previous_hash = GENESIS_HASH
        previous_version = 0
        for run in runs:
            version, where = run.first_version, run.first_location
            if version != previous_version + 1:
                missing = (
                    f"version {previous_version + 1}"
                    if version == previous_version + 2
                    else f"versions {previous_version + 1} to {version - 1}"
                )
                findings.append(
                    Finding("gap", where, stream_id, version, f"{missing} missing before it")
                )
            elif run.first_prev_hash != previous_hash:
                findings.append(
                    Finding(
                        "broken_link",
                        where,
                        stream_id,
                        version,
                        f"prev_hash {run.first_prev_hash} is not the hash {previous_hash} "
                        f"of version {previous_version}",
                    )
                )
            previous_hash, previous_version = run.last_hash, run.last_version
    return findings


def check_chains(events: Iterable[tuple[Mapping[str, Any], Location]]) -> list[Finding]:
    checker = ChainChecker()
    for envelope, location in events:
        checker.check(envelope, location)
    return checker.finish()
