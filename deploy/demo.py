"""The main job: the system with a demo programme, left running for the user to explore."""

from __future__ import annotations

import asyncio

from rich.console import Console

from deploy.smoke import run_smoke
from shared.settings import KafkaSettings


def run_demo(kafka_bootstrap_servers: str, database_url: str) -> None:
    console = Console()
    kafka = KafkaSettings(kafka_bootstrap_servers=kafka_bootstrap_servers)
    result = asyncio.run(run_smoke(kafka, database_url, count=20))
    console.print(
        f"Smoke flow: {len(result.sent)} messages published to {result.topic} through FastStream, "
        f"{result.stored} stored in PostgreSQL table smoke.messages."
    )
    console.print(
        "The stack stays up: `./berlian stack status`, `./berlian stack logs`, "
        "`./berlian stack down` to stop it."
    )
