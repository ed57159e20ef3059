"""No Kafka client in the code is built with settings weaker than the platform's: producers wait
for all in-sync replicas and are idempotent; consumers read committed records only, start from
the earliest, and never commit by themselves. Checked on the source, so a new client cannot slip
by."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka_clients import (
    CONSUMER_SAFETY,
    PRODUCER_SAFETY,
    consumer_options,
    producer_options,
)
from shared.settings import KafkaSettings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SAFE_SPREADS = {
    "AIOKafkaProducer": {"producer_options", "PRODUCER_SAFETY"},
    "AIOKafkaConsumer": {"consumer_options", "CONSUMER_SAFETY"},
}
GUARDED = {
    "acks",
    "enable_idempotence",
    "enable_auto_commit",
    "isolation_level",
    "auto_offset_reset",
    "auto_commit",
}


def client_calls() -> Iterator[tuple[str, int, ast.Call, str]]:
    for folder in ("shared", "contract", "services", "deploy", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if name in SAFE_SPREADS:
                        yield str(path.relative_to(ROOT)), node.lineno, node, name


def spread_names(call: ast.Call) -> set[str]:
    names = set()
    for keyword in call.keywords:
        if keyword.arg is None:  # **spread
            value = keyword.value
            target = value.func if isinstance(value, ast.Call) else value
            names.add(getattr(target, "id", getattr(target, "attr", "")))
    return names


def test_every_client_in_the_code_spreads_the_safe_settings_and_overrides_none() -> None:
    calls = list(client_calls())
    assert {name for *_, name in calls} >= {"AIOKafkaProducer", "AIOKafkaConsumer"}
    for where, line, call, name in calls:
        assert spread_names(call) & SAFE_SPREADS[name], f"{where}:{line} builds {name} unsafely"
        overridden = {k.arg for k in call.keywords if k.arg} & GUARDED
        assert not overridden, f"{where}:{line} overrides {overridden}"


async def test_the_safe_settings_reach_the_clients() -> None:
    kafka = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1")  # built, never started
    producer = AIOKafkaProducer(**producer_options(kafka))
    consumer = AIOKafkaConsumer(**consumer_options(kafka, "group"))

    assert producer._sender._acks == -1  # all in-sync replicas
    assert producer._txn_manager is not None  # idempotence: sequence numbers per partition
    assert consumer._enable_auto_commit is False
    assert consumer._isolation_level == "read_committed"
    assert consumer._auto_offset_reset == "earliest"
    assert PRODUCER_SAFETY["acks"] == "all"
    assert CONSUMER_SAFETY["enable_auto_commit"] is False
    await producer.stop()
    await consumer.stop()
