"""PostgreSQL from Debian's packages: installed when missing, its cluster started when stopped,
and the Berlian administrative role and database created."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.local.errors import StackError
from deploy.local.packages import apt_install

ADMIN_ROLE = "berlian"
ADMIN_PASSWORD = "berlian"  # noqa: S105 - local development stack only, bound to 127.0.0.1
DATABASE = "berlian"


# The local cluster serves loopback only: TLS would only cost CPU (a sixth of a replay's time
# went to it), so it is off. Durability stays as in production (fsync, synchronous commit).
LOCAL_SETTINGS = """\
# Written by ./berlian stack up: the local stack's PostgreSQL, on 127.0.0.1 only.
listen_addresses = '127.0.0.1'
ssl = off
shared_buffers = 512MB
max_wal_size = 4GB
max_connections = 200
"""


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    running: bool


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{what} failed: {(result.stderr or result.stdout).strip()[-400:]}")
    return result.stdout


def _installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/postgres")) and bool(
        shutil.which("pg_lsclusters")
    )


def install() -> None:
    """apt-get install postgresql, when the server is not there yet."""
    if not _installed():
        apt_install(["postgresql"], "The local stack's database (or set DATABASE_URL)")


def clusters() -> list[Cluster]:
    out = _run(["pg_lsclusters", "--no-header"], "Listing PostgreSQL clusters")
    found = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            found.append(
                Cluster(fields[0], fields[1], int(fields[2]), fields[3].startswith("online"))
            )
    return found


def _configure(cluster: Cluster) -> bool:
    """Put the local settings in the cluster's conf.d; True if they changed."""
    settings = Path("/etc/postgresql") / cluster.version / cluster.name / "conf.d" / "berlian.conf"
    if settings.exists() and settings.read_text() == LOCAL_SETTINGS:
        return False
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(LOCAL_SETTINGS)
    return True


def _psql(sql: str, database: str = "postgres", port: int = 5432) -> str:
    return _run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-p",
            str(port),
            "-d",
            database,
            "-c",
            sql,
        ],
        "psql as the postgres superuser",
    )


def up() -> str:
    """Make sure a cluster runs with the Berlian role and database; return its admin URL."""
    install()
    found = clusters()
    if not found:
        version = sorted(
            p.parent.parent.name for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        )[-1]
        _run(["pg_createcluster", version, "main"], "Creating a PostgreSQL cluster")
        found = clusters()
    cluster = found[0]
    changed = _configure(cluster)
    if not cluster.running:
        try:
            _run(["pg_ctlcluster", cluster.version, cluster.name, "start"], "Starting PostgreSQL")
        except StackError:
            # Another process (a restart under test, a second `stack up`) may have started it
            # between the look and the start: running is what was asked for.
            if not any(c.running for c in clusters() if c.name == cluster.name):
                raise
    elif changed:
        _run(["pg_ctlcluster", cluster.version, cluster.name, "restart"], "Restarting PostgreSQL")
    deadline = time.monotonic() + 60
    while (
        subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(cluster.port)], check=False
        ).returncode
        != 0
    ):
        if time.monotonic() > deadline:
            raise StackError(
                f"PostgreSQL on 127.0.0.1:{cluster.port} did not accept connections within 60s; "
                f"read /var/log/postgresql/postgresql-{cluster.version}-{cluster.name}.log."
            )
        time.sleep(0.5)
    _psql(
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ADMIN_ROLE}') THEN "
        f"CREATE ROLE {ADMIN_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '{ADMIN_PASSWORD}'; "
        "END IF; END $$;",
        port=cluster.port,
    )
    # Test runs drop their databases WITH (FORCE), which must end the service roles' sessions
    # (and an autovacuum worker's): the local administrator may signal any backend.
    _psql(f"GRANT pg_signal_backend TO {ADMIN_ROLE}", port=cluster.port)
    if not _psql(
        f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", port=cluster.port
    ).strip():
        _psql(f"CREATE DATABASE {DATABASE} OWNER {ADMIN_ROLE}", port=cluster.port)
    return f"postgresql://{ADMIN_ROLE}:{ADMIN_PASSWORD}@127.0.0.1:{cluster.port}/{DATABASE}"


def restart() -> None:
    """Restart the running cluster (every connection is cut), as a failover would."""
    for cluster in clusters():
        if cluster.running:
            _run(
                ["pg_ctlcluster", cluster.version, cluster.name, "restart"], "Restarting PostgreSQL"
            )


def drop_database() -> None:
    """Delete the Berlian database (with ``stack down --wipe``): the topics go with it, and
    projections must never outlive the events they were built from."""
    for cluster in clusters() if _installed() else []:
        if cluster.running:
            _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", port=cluster.port)


def down() -> bool:
    """Stop the running clusters. True if one was running."""
    if not _installed():
        return False
    stopped = False
    for cluster in clusters():
        if cluster.running:
            _run(["pg_ctlcluster", cluster.version, cluster.name, "stop"], "Stopping PostgreSQL")
            stopped = True
    return stopped


def status() -> list[Cluster]:
    return clusters() if _installed() else []
