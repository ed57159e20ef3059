"""``audit verify`` by groups of partitions, one process each.

The record key is the worker, or the stream for events about no worker
(``shared.relay.outbox.record_key``); a stream's events name one worker or none, so each stream
lives in one partition and one group reads all of it. Each group checks its records' hashes and
the order within its partitions, and sums every stream up as runs of linked versions
(:class:`shared.audit.chain.Run`); the parent links the runs of all groups, which finds the
same gaps and broken links as one checker fed every record. Should one version of a stream turn
up in two groups anyway (a record written under another key, or after the partition count was
raised), telling a harmless duplicate from a conflicting version needs both records, and the
caller verifies the log again in one process (:func:`merge_runs` answers None).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys
from asyncio.subprocess import Process
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise

from aiokafka import TopicPartition

from shared.audit.chain import Run
from shared.audit.records import GroupResult, check_records
from shared.settings import KafkaSettings


def default_workers() -> int:
    """As many processes as this process may run on cores."""
    return len(os.sched_getaffinity(0))


def partition_groups(ends: Mapping[TopicPartition, int], groups: int) -> list[list[TopicPartition]]:
    """The partitions holding records, in at most ``groups`` groups of about equal records:
    the largest partition first, each into the lightest group so far."""
    loads: list[tuple[int, list[TopicPartition]]] = [(0, []) for _ in range(groups)]
    for tp in sorted((tp for tp in ends if ends[tp] > 0), key=lambda tp: (-ends[tp], tp)):
        lightest = min(range(groups), key=lambda i: loads[i][0])
        load, members = loads[lightest]
        loads[lightest] = (load + ends[tp], [*members, tp])
    return [sorted(members) for _, members in loads if members]


def merge_runs(groups: Sequence[Mapping[str, list[Run]]]) -> dict[str, list[Run]] | None:
    """Every stream's runs from all groups, in version order; None if two groups hold the same
    version of a stream."""
    merged: dict[str, list[Run]] = {}
    in_several: set[str] = set()
    for runs in groups:
        for stream_id, stream_runs in runs.items():
            if stream_id in merged:
                merged[stream_id] = merged[stream_id] + stream_runs
                in_several.add(stream_id)
            else:
                merged[stream_id] = stream_runs
    for stream_id in in_several:
        ordered = sorted(merged[stream_id], key=lambda run: run.first_version)
        if any(a.last_version >= b.first_version for a, b in pairwise(ordered)):
            return None
        merged[stream_id] = ordered
    return merged


async def check_groups(
    kafka: KafkaSettings,
    topics: Sequence[str],
    groups: Sequence[Sequence[TopicPartition]],
    progress: Callable[[int], None],
    keep_copies: bool,
) -> list[GroupResult]:
    """Each group of partitions read and checked by a process of its own: a fresh interpreter
    running this module, which imports only what checking needs (multiprocessing's spawn would
    import the caller's main module again in every process, the whole command line), and does
    not inherit this process's event loop and Kafka clients as a fork would."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        for _ in groups
    ]
    try:
        for process, group in zip(processes, groups, strict=True):
            assert process.stdin is not None
            process.stdin.write(pickle.dumps((kafka, list(topics), list(group), keep_copies)))
            process.stdin.close()
        return list(await asyncio.gather(*(_result(p, progress) for p in processes)))
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _result(process: Process, progress: Callable[[int], None]) -> GroupResult:
    """The group's messages, each its length then its pickle: records done, then the result."""
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        while True:
            header = await process.stdout.readexactly(_LENGTH.size)
            payload = await process.stdout.readexactly(*_LENGTH.unpack(header))
            message = pickle.loads(payload)  # noqa: S301 (written by the child this started)
            if isinstance(message, GroupResult):
                await process.wait()
                return message
            progress(message)
    except asyncio.IncompleteReadError:
        await process.wait()
        raise RuntimeError(
            f"a verifying process ended with {process.returncode} and no result:\n"
            + (await errors).decode(errors="replace")
        ) from None
    finally:
        errors.cancel()


_LENGTH = struct.Struct(">Q")


def _check_group() -> None:
    """One group: the job pickled on stdin, the messages on stdout, both written by the parent
    that started this process and reads it (nothing else writes to them: print and warnings go
    to stderr)."""
    job = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (written by the parent)
    kafka, topics, partitions, keep_copies = job
    out = sys.stdout.buffer
    sys.stdout = sys.stderr

    def send(message: int | GroupResult) -> None:
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(payload)) + payload)
        out.flush()

    checked = asyncio.run(check_records(kafka, topics, send, keep_copies, only=set(partitions)))
    send(GroupResult.of(checked))


if __name__ == "__main__":
    _check_group()
