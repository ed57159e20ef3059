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
import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any

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
    """Each group of partitions read and checked by a process of its own (spawned: a fork
    would inherit this process's event loop and Kafka clients)."""
    context = multiprocessing.get_context("spawn")
    messages: Queue[tuple[str, int, Any]] = context.Queue()
    processes = [
        context.Process(
            target=_check_group,
            args=(kafka, list(topics), list(group), keep_copies, messages, index),
            name=f"audit-verify-{index}",
            daemon=True,
        )
        for index, group in enumerate(groups)
    ]
    for process in processes:
        process.start()
    loop = asyncio.get_running_loop()

    def advance(records: int) -> None:
        loop.call_soon_threadsafe(progress, records)

    try:
        return await asyncio.to_thread(_collect, messages, processes, advance)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _collect(
    messages: Queue[tuple[str, int, Any]],
    processes: Sequence[BaseProcess],
    progress: Callable[[int], None],
) -> list[GroupResult]:
    results: dict[int, GroupResult] = {}
    while len(results) < len(processes):
        try:
            kind, index, content = messages.get(timeout=1)
        except queue.Empty:
            ended = [
                p.name for i, p in enumerate(processes) if i not in results and not p.is_alive()
            ]
            if ended:
                raise RuntimeError(f"{', '.join(ended)} ended without a result") from None
            continue
        if kind == "progress":
            progress(content)
        elif kind == "done":
            results[index] = content
        else:
            raise RuntimeError(f"{processes[index].name} failed:\n{content}")
    return [results[index] for index in range(len(processes))]


def _check_group(
    kafka: KafkaSettings,
    topics: list[str],
    partitions: list[TopicPartition],
    keep_copies: bool,
    messages: Queue[tuple[str, int, Any]],
    index: int,
) -> None:
    try:
        checked = asyncio.run(
            check_records(
                kafka,
                topics,
                lambda n: messages.put(("progress", index, n)),
                keep_copies,
                only=set(partitions),
            )
        )
        messages.put(("done", index, GroupResult.of(checked)))
    except Exception:  # the parent raises it: a verify must not end as if it had passed
        messages.put(("failed", index, traceback.format_exc()))
