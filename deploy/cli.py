"""The ``berlian`` command line: the local stack, the demo and the test suite."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deploy import audit_cli
from deploy.enrolment_cli import erase_command, import_command
from deploy.keys_cli import checkpoint_app, keys_app
from deploy.local import kafka_broker, keycloak, postgres, stack
from deploy.local import services as local_services
from deploy.local.errors import StackError
from deploy.local.paths import REPO_ROOT
from deploy.local.processes import pid_alive
from deploy.platform_cli import audit_app, dead_letters_app, replay_app, restore_command
from deploy.tokens_cli import tokens_app
from shared.settings import MissingSettingError

app = typer.Typer(
    help="Berlian: Kota Pekalongan's subsidy programme on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help="The local Apache Kafka, PostgreSQL and Keycloak stack.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.add_typer(audit_app, name="audit")
audit_app.command("history")(audit_cli.history)
audit_app.command("as-of")(audit_cli.as_of)
audit_app.command("diff")(audit_cli.diff)
audit_app.command("report")(audit_cli.report)
audit_app.command("web")(audit_cli.web)
app.add_typer(replay_app, name="replay")
app.add_typer(dead_letters_app, name="deadletters")
app.command("import")(import_command)
app.command("erase")(erase_command)
app.command("restore")(restore_command)
app.add_typer(keys_app, name="keys")
app.add_typer(checkpoint_app, name="checkpoint")
app.add_typer(tokens_app, name="tokens")
console = Console(stderr=True)

ClusterOption = Annotated[
    bool, typer.Option("--cluster", help="The three-broker cluster (RF 3, min ISR 2) instead.")
]


def _fail(error: StackError) -> typer.Exit:
    console.print(f"[red]berlian:[/red] {error}")
    return typer.Exit(code=1)


@stack_app.command("up")
def stack_up(cluster: ClusterOption = False) -> None:
    """Start Kafka, PostgreSQL and Keycloak (installing what is missing) and create schemas,
    topics and the identity realm."""
    try:
        endpoints = stack.up(cluster=cluster)
    except StackError as error:
        raise _fail(error) from None
    console.print(f"Kafka      {endpoints.kafka_bootstrap_servers}")
    console.print(f"PostgreSQL {endpoints.database_url}")
    console.print(f"Keycloak   {endpoints.issuer}")


@stack_app.command("down")
def stack_down(
    cluster: ClusterOption = False,
    wipe: Annotated[
        bool, typer.Option(help="Also delete the data: topics, database, realm and users.")
    ] = False,
) -> None:
    """Stop the stack cleanly; nothing is left running."""
    if not cluster:
        local_services.down()  # the services stand on the single-broker stack
    stack.down(cluster=cluster, wipe=wipe)
    console.print("stopped")


@stack_app.command("status")
def stack_status() -> None:
    """What runs, where, and with which process ids."""
    table = Table("component", "address", "state")
    for layout in (kafka_broker.SINGLE, kafka_broker.CLUSTER):
        for node in layout.nodes:
            pid = pid_alive(layout.pid_file(node))
            state = f"running (pid {pid})" if pid else "stopped"
            table.add_row(
                f"{layout.name} node {node.node_id}", f"127.0.0.1:{node.broker_port}", state
            )
    for cluster in postgres.status():
        state = "running" if cluster.running else "stopped"
        table.add_row(
            f"postgresql {cluster.version}/{cluster.name}", f"127.0.0.1:{cluster.port}", state
        )
    pid = keycloak.status()
    table.add_row(
        f"keycloak {keycloak.KEYCLOAK_VERSION}",
        keycloak.ISSUER,
        f"running (pid {pid})" if pid else "stopped",
    )
    Console().print(table)


@stack_app.command("logs")
def stack_logs(
    cluster: ClusterOption = False,
    node: Annotated[int, typer.Option(help="Which node's log.")] = 1,
    lines: Annotated[int, typer.Option(help="How many of the last lines.")] = 50,
) -> None:
    """The tail of a Kafka node's log."""
    layout = kafka_broker.CLUSTER if cluster else kafka_broker.SINGLE
    matching = [n for n in layout.nodes if n.node_id == node]
    if not matching:
        raise _fail(StackError(f"There is no node {node} in {layout.name}."))
    log = layout.log_file(matching[0])
    if not log.exists():
        raise _fail(StackError(f"{log} does not exist yet: start the stack first."))
    for line in log.read_text(errors="replace").splitlines()[-lines:]:
        print(line)


@app.command("test", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_tests(ctx: typer.Context) -> None:
    """Lint, type-check, check the import contracts, and run the whole test suite on a real
    Kafka and PostgreSQL."""
    python = sys.executable
    steps = [
        ("ruff", [python, "-m", "ruff", "check", "."]),
        ("ruff format", [python, "-m", "ruff", "format", "--check", "."]),
        ("mypy", [python, "-m", "mypy"]),
        # The import contracts in pyproject.toml: layers, independent services, pure domains.
        ("lint-imports", [str(Path(python).with_name("lint-imports"))]),
        ("pytest", [python, "-m", "pytest", *ctx.args]),
    ]
    for name, argv in steps:
        console.print(f"[bold]== {name}[/bold]")
        if name == "pytest":
            # Fetching and building the identity provider the first time takes longer than one
            # test may: it is ready before the tests ask it for tokens.
            try:
                keycloak.up()
            except StackError as error:
                raise _fail(error) from None
        code = subprocess.run(argv, cwd=REPO_ROOT, env=os.environ.copy(), check=False).returncode
        if code != 0:
            console.print(f"[red]{name} failed (exit {code})[/red]")
            raise typer.Exit(code=code)


@app.command("migrate")
def run_migrations(
    topics: Annotated[
        bool, typer.Option("--topics", help="Also create the missing topics (without Strimzi).")
    ] = False,
) -> None:
    """Create schemas, roles and every service's tables (idempotent; run before the services)."""
    from services.catalog import migrate_all
    from shared.settings import DatabaseSettings, KafkaSettings
    from shared.topics import ensure_topics

    applied = asyncio.run(migrate_all(DatabaseSettings()))
    for service, steps in applied.items():
        console.print(f"{service}: {', '.join(steps) or 'up to date'}")
    if topics:
        created = asyncio.run(ensure_topics(KafkaSettings()))
        console.print(f"topics created: {', '.join(created) or 'none missing'}")


@app.command("run")
def run_service(
    service: Annotated[str, typer.Argument(help="enrolment")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port; defaults per service.")] = None,
) -> None:
    """Run one service: its HTTP API, outbox relay and consumers; stops cleanly on SIGTERM."""
    from services.wiring import build_service
    from shared.auth import AuthSettings
    from shared.logs import configure as configure_logs
    from shared.runtime import stop_on_signals
    from shared.settings import DatabaseSettings, KafkaSettings
    from shared.tracing import configure as configure_tracing

    configure_logs(service)
    configure_tracing(service)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        process = await build_service(service, KafkaSettings(), DatabaseSettings(), AuthSettings())
        try:
            await process.run(stop, host, port or local_services.PORTS[service])
        finally:
            await process.close()

    asyncio.run(main())


@app.command("token")
def token(
    role: Annotated[
        str, typer.Option(help="kelurahan_officer, kecamatan_officer, city_admin, ...")
    ],
    subject: Annotated[str, typer.Option(help="Who the token is for.")] = "developer",
    area: Annotated[str | None, typer.Option(help="Kelurahan or kecamatan code.")] = None,
) -> None:
    """An access token from the local stack's identity provider, for a local user with this
    role and area (made on first use; Keycloak is started if it is not running)."""
    from shared.auth import ROLES
    from shared.scope import AreaClaimError, AreaScope, Claimed

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    try:
        AreaScope.of(Claimed(role, area))
    except AreaClaimError as error:
        raise typer.BadParameter(f"--area: {error}") from None
    try:
        print(keycloak.LocalProvider(prefix="developer").token(role, area, subject))
    except StackError as error:
        raise _fail(error) from None


@app.command("console")
def run_console(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8020,
) -> None:
    """Serve the officers' console (sign in through the identity provider)."""
    import uvicorn

    from services.console.app import create_app
    from services.console.settings import ConsoleSettings
    from shared.auth import AuthSettings
    from shared.logs import configure as configure_logs

    configure_logs("console")
    settings = ConsoleSettings()
    app = create_app(settings, AuthSettings())
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


@app.command("demo")
def demo(
    scale: Annotated[float, typer.Option(help="Programme size; 1 is Pekalongan's 2,700.")] = 1.0,
) -> None:
    """Bring up the stack and the services, and run the demo programme through their APIs.

    The programme starts on an empty local stack: a previous run's topics and database are
    wiped first (its registrations and quotas would refuse the same programme again)."""
    from deploy.demo import DemoSize, run_demo

    try:
        if local_services.down():
            console.print("stopped the services of a previous run")
        stack.down(wipe=True, identity=False)
        stack.up()
        regular, incidental = round(1000 * scale), round(1700 * scale)
        # Enough registrations in the 27 kelurahan for every designation, after the demo's
        # deliberately refused rows (one per kelurahan) and rejected cases (about 2%).
        per_kelurahan = max(4, math.ceil((regular + incidental) * 1.1 / 27) + 1)
        size = DemoSize(per_kelurahan=per_kelurahan, regular=regular, incidental=incidental)
        run_demo(size)
    except StackError as error:
        raise _fail(error) from None


# The scenarios by the names an operator picks them with, as pytest selects them.
RELIABILITY_SCENARIOS = {
    "crashes": "tests/reliability/test_service_crashes.py",
    "broker-loss": "tests/reliability/test_broker_loss.py",
    "database-restart": "tests/reliability/test_database_restart.py",
    "hostile-records": "tests/reliability/test_hostile_records.py::"
    "test_hostile_records_are_dead_lettered_and_the_commands_after_them_go_through",
    "redelivery": "tests/reliability/test_hostile_records.py::"
    "test_every_record_delivered_twice_changes_nothing",
}


@app.command("reliability")
def reliability(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Run only these ({', '.join(RELIABILITY_SCENARIOS)}); every one by default."
        ),
    ] = None,
    crashes: Annotated[int, typer.Option(help="SIGKILLs in the crash scenario.")] = 20,
    database_restarts: Annotated[int, typer.Option(help="PostgreSQL restarts under load.")] = 3,
    leader_kills: Annotated[
        int, typer.Option(help="SIGKILLs of the busiest partition's leader on the cluster.")
    ] = 5,
    load_seconds: Annotated[
        float, typer.Option(help="Seconds each scenario offers its load, at the least.")
    ] = 60,
    rate: Annotated[float, typer.Option(help="Commands the load starts per second.")] = 100,
) -> None:
    """Run the fault scenarios at their long size, under an open-loop load of registrations,
    verifications and imports, and write their figures to docs/reliability.md."""
    from deploy.reliability_report import keep_long_runs, write

    unknown = sorted(set(scenario or ()) - RELIABILITY_SCENARIOS.keys())
    if unknown:
        raise typer.BadParameter(
            f"no scenario {', '.join(unknown)}: choose from {', '.join(RELIABILITY_SCENARIOS)}"
        )
    figures = REPO_ROOT / "test-artifacts" / "reliability" / "figures.jsonl"
    figures.unlink(missing_ok=True)
    env = {
        **os.environ,
        "RELIABILITY_LONG": "1",
        "RELIABILITY_CRASHES": str(crashes),
        "RELIABILITY_DATABASE_RESTARTS": str(database_restarts),
        "RELIABILITY_LEADER_KILLS": str(leader_kills),
        "RELIABILITY_LOAD_SECONDS": str(load_seconds),
        "RELIABILITY_RATE": str(rate),
    }
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "reliability",
        *(
            [RELIABILITY_SCENARIOS[name] for name in scenario]
            if scenario
            else ["tests/reliability"]
        ),
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=1800",
    ]
    code = subprocess.run(argv, cwd=REPO_ROOT, env=env, check=False).returncode
    history = REPO_ROOT / "docs" / "reliability-runs.jsonl"
    keep_long_runs(figures, history)
    write(REPO_ROOT / "docs" / "reliability.md", history)
    console.print("figures kept in docs/reliability-runs.jsonl and written to docs/reliability.md")
    raise typer.Exit(code)


@app.command("bench")
def bench(
    size: Annotated[
        str,
        typer.Option(help="full (the sizes of docs/benchmarks.md), medium (a tenth) or smoke."),
    ] = "full",
    results: Annotated[Path, typer.Option(help="Where the JSON results go.")] = (
        REPO_ROOT / "bench" / "results"
    ),
    document: Annotated[
        bool, typer.Option(help="Rewrite the tables of docs/benchmarks.md (default: at full size).")
    ] = True,
) -> None:
    """Run every benchmark on the local stack in one run; print and record the figures."""
    from bench.report import markdown
    from bench.suite import SIZES, run

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of: {', '.join(SIZES)}")
    doc = REPO_ROOT / "docs" / "benchmarks.md" if document and size == "full" else None
    try:
        figures = asyncio.run(run(SIZES[size], results, doc))
    except StackError as error:
        raise _fail(error) from None
    print(markdown(figures))


services_app = typer.Typer(help="The services as background processes.", no_args_is_help=True)
app.add_typer(services_app, name="services")


@services_app.command("up")
def services_up() -> None:
    """Start every service (after ``stack up`` and ``migrate``) and wait until ready."""
    try:
        for service, address in local_services.up().items():
            console.print(f"{service:12} {address}")
    except StackError as error:
        raise _fail(error) from None


@services_app.command("down")
def services_down() -> None:
    """Stop every service with SIGTERM (graceful: batches finish, the outbox is flushed)."""
    console.print(f"stopped: {', '.join(local_services.down()) or 'none was running'}")


@services_app.command("status")
def services_status() -> None:
    """Which services run, with their process ids."""
    for service, pid in local_services.status().items():
        console.print(f"{service:12} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")


def main() -> None:
    os.chdir(Path(REPO_ROOT))
    try:
        app()
    except MissingSettingError as error:
        # A deployed process without its secrets: say which, and do not start.
        console.print(f"[red]berlian:[/red] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
