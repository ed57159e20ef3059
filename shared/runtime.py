"""One service as one process: its HTTP API, its outbox relay and its consumers, started
together and stopped together on SIGTERM (stop taking requests, finish the batch in hand,
flush the outbox, close)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.audit.checkpoints import checkpoint_age_job
from shared.catalogue import EventCatalogue
from shared.db import service_dsn
from shared.eventstore.migrations import PLATFORM
from shared.eventstore.store import outbox_channel
from shared.kafka_clients import producer_options
from shared.projection.runner import ProjectionRunner
from shared.projection.writer import Projection
from shared.relay import OutboxRelay
from shared.relay.published import OutboxPublished, install_outbox_published
from shared.settings import DatabaseSettings, KafkaSettings
from shared.telemetry import COMMAND_SECONDS, COMMANDS
from shared.topic_reader import partitions_of

log = logging.getLogger(__name__)


# Methods a route may have; anything else a client makes up is counted under one label, so no
# request can add a metric series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def metric_command(request: Request) -> str:
    """The command label of a request: its method and route template (never the raw path),
    ``OTHER`` for a made-up method and ``unmatched`` for a path no route has."""
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    route = getattr(request.scope.get("route"), "path", "unmatched")
    return f"{method} {route}"


class BackgroundTaskDiedError(RuntimeError):
    """A relay, consumer or job of the service ended by itself."""


@dataclass
class ServiceProcess:
    name: str
    app: FastAPI
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    relay: OutboxRelay
    notify_channel: str
    runners: Sequence[ProjectionRunner]
    kafka: KafkaSettings
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=tuple
    )
    expected_migrations: Sequence[str] = ()
    # Clients of the service's own (beyond the pool and the producer) to close at the end.
    closers: Sequence[Callable[[], Awaitable[None]]] = ()
    stuck_after_seconds: float = 120.0
    request_grace_seconds: int = 20  # well inside the pod's termination grace period

    async def close(self) -> None:
        for close in self.closers:
            await close()
        await self.producer.stop()
        await self.relay.producer.stop()  # the same one, unless the relay had to renew it
        await self.pool.close()

    def add_health(self) -> None:
        service = self.name

        @self.app.middleware("http")
        async def measure(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            started = time.perf_counter()
            response = await call_next(request)
            command = metric_command(request)
            outcome = (
                "accepted"
                if response.status_code < 400
                else "refused"
                if response.status_code < 500
                else "failed"
            )
            COMMANDS.labels(service, command, outcome).inc()
            COMMAND_SECONDS.labels(service, command).observe(time.perf_counter() - started)
            return response

        # Every service owns a topic: its consumers ask it before deciding on its events.
        install_outbox_published(self.app, OutboxPublished(self.pool, self.name))

        @self.app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        @self.app.get("/health/live", include_in_schema=False)
        async def live() -> JSONResponse:
            # Alive while every consumer's loop keeps turning (Kafka being away does not stop
            # it); one stuck longer than the threshold asks for a restart.
            now = time.monotonic()
            stuck = [
                r.consumer_name
                for r in self.runners
                if r.last_turn is not None and now - r.last_turn > self.stuck_after_seconds
            ]
            status = 503 if stuck else 200
            return JSONResponse({"alive": not stuck, "stuck": stuck}, status_code=status)

        @self.app.get("/health/ready", include_in_schema=False)
        async def ready() -> JSONResponse:
            problems = []
            try:
                await self.pool.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError) as error:
                problems.append(f"postgresql: {error}")
            try:
                await partitions_of(self.kafka, [self.kafka.events_topic(self.name)])
            except Exception as error:  # any failure to reach Kafka means not ready
                problems.append(f"kafka: {error}")
            if self.expected_migrations and not problems:
                applied = {
                    r["name"]
                    for r in await self.pool.fetch(
                        f"SELECT name FROM {self.name}.schema_migrations"
                    )
                }
                missing = [m for m in self.expected_migrations if m not in applied]
                if missing:
                    problems.append(f"migrations not applied: {', '.join(missing)}")
            unassigned = [r.consumer_name for r in self.runners if not r.assigned]
            if unassigned:
                problems.append(f"consumers without partitions yet: {', '.join(unassigned)}")
            # Parked events do not make the service unready (its API works), but are reported:
            # they wait for an operator (docs/runbook.md, BerlianOutboxParked).
            warnings = []
            if not problems:
                try:
                    waiting, parked = await self.relay.counts()
                except (OSError, asyncpg.PostgresError) as error:
                    waiting, parked = 0, 0
                    problems.append(f"postgresql: {error}")
                if parked:
                    warnings.append(
                        f"outbox: {parked} event(s) parked, refused by the broker for good "
                        f"({waiting} waiting)"
                    )
            status = 503 if problems else 200
            return JSONResponse(
                {"ready": not problems, "problems": problems, "warnings": warnings},
                status_code=status,
            )

    async def run(self, stop: asyncio.Event, host: str, port: int) -> None:
        """Serve until ``stop`` is set, then shut down in order: the API first, so that no
        command is appended after the relay's last flush; then the relay and the consumers."""
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=self.request_grace_seconds,
            )
        )
        background_stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.relay.run(background_stop, self.notify_channel), name="relay"),
            *(
                asyncio.create_task(r.run(background_stop), name=r.consumer_name)
                for r in self.runners
            ),
            *(
                asyncio.create_task(job(background_stop), name=getattr(job, "__name__", "job"))
                for job in self.background
            ),
        ]
        serving = asyncio.create_task(server.serve(), name="http")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        # A relay or consumer that ended by itself would leave an API whose effects never
        # publish or never show: stop the whole process, for the orchestrator to restart it.
        died = [task for task in tasks if task.done()]
        for task in died:
            error = None if task.cancelled() else task.exception()
            log.error(
                "%s of %s stopped on its own (%r): shutting down", task.get_name(), self.name, error
            )
        stopping.cancel()
        server.should_exit = True  # stop taking requests, finish those in flight
        await serving
        background_stop.set()
        # Runners finish their batch; the relay flushes.
        await asyncio.gather(*tasks, return_exceptions=bool(died))
        if died:
            raise BackgroundTaskDiedError(", ".join(task.get_name() for task in died))


async def connect(
    service: str, kafka: KafkaSettings, database: DatabaseSettings
) -> tuple[asyncpg.Pool, AIOKafkaProducer]:
    """The service's own database role and a safe producer: its two adapters."""
    dsn = service_dsn(database.database_url, service, database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    return pool, producer


def assemble(
    service: str,
    app: FastAPI,
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    catalogue: EventCatalogue,
    projections: Sequence[Projection],
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
    closers: Sequence[Callable[[], Awaitable[None]]] = (),
) -> ServiceProcess:
    """One process: the API, the relay of the service's outbox, a runner per projection."""
    process = ServiceProcess(
        name=service,
        app=app,
        pool=pool,
        producer=producer,
        relay=OutboxRelay(
            pool,
            service,
            kafka.events_topic(service),
            producer,
            new_producer=lambda: AIOKafkaProducer(**producer_options(kafka)),
        ),
        notify_channel=outbox_channel(service),
        runners=[ProjectionRunner(pool, service, p, catalogue, kafka) for p in projections],
        kafka=kafka,
        # Every service exports how old the newest signed checkpoint is, for the stale alert.
        background=[*background, checkpoint_age_job(pool)],
        closers=closers,
        expected_migrations=[
            *(m.name for m in PLATFORM),
            *(m.name for p in projections for m in p.migrations),
        ],
    )
    process.add_health()
    return process


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
