"""The services as background processes on loopback, each ``berlian run <service>``, the audit
application (``berlian audit web``) and the officers' console in front of them
(``berlian console``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from deploy.local.errors import StackError
from deploy.local.paths import REPO_ROOT, run_dir
from deploy.local.processes import pid_alive, port_open, start_detached, stop

PORTS = {"enrolment": 8001, "verification": 8002, "billing": 8003, "claims": 8004}
HOST = "127.0.0.1"
# The port the local identity provider's console client sends signed-in browsers back to.
CONSOLE_PORT = 8020
CONSOLE_URL = f"http://{HOST}:{CONSOLE_PORT}"
# Where the console's auditor pages find the audit application (its default audit URL).
AUDIT_PORT = 8010
# Beside the services: each one's port and the command line that serves it.
FRONTS = {"audit": (AUDIT_PORT, ["audit", "web"]), "console": (CONSOLE_PORT, ["console"])}


def _dir(service: str) -> Path:
    return run_dir() / "services" / service


def url(service: str) -> str:
    return f"http://{HOST}:{PORTS[service]}"


def _port(process: str) -> int:
    return FRONTS[process][0] if process in FRONTS else PORTS[process]


def _command(process: str) -> list[str]:
    served = FRONTS[process][1] if process in FRONTS else ["run", process]
    return [sys.executable, "-m", "deploy.cli", *served, "--port", str(_port(process))]


def _url(process: str) -> str:
    return f"http://{HOST}:{_port(process)}"


PROCESSES = (*PORTS, *FRONTS)


def up(timeout: float = 60.0) -> dict[str, str]:
    """Start every service (and the audit application and the console) not yet running and
    wait until each is ready."""
    for service in PROCESSES:
        port = _port(service)
        pid_file = _dir(service) / "service.pid"
        if pid_alive(pid_file):
            continue
        if port_open(HOST, port):
            raise StackError(
                f"Port {port} on {HOST} is taken by another process, so {service} cannot "
                f"start; stop that process (ss -ltnp 'sport = :{port}')."
            )
        _dir(service).mkdir(parents=True, exist_ok=True)
        start_detached(_command(service), _dir(service) / "service.log", pid_file, REPO_ROOT)
    deadline = time.monotonic() + timeout
    for service in PROCESSES:
        while True:
            if pid_alive(_dir(service) / "service.pid") is None:
                raise StackError(
                    f"{service} exited during start-up; read {_dir(service) / 'service.log'}."
                )
            try:
                if httpx.get(f"{_url(service)}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StackError(
                    f"{service} was not ready within {timeout:.0f}s; read {log_file(service)}."
                )
            time.sleep(0.5)
    return {service: url(service) for service in PORTS}


def down() -> list[str]:
    return [service for service in PROCESSES if stop(_dir(service) / "service.pid")]


def status() -> dict[str, int | None]:
    return {service: pid_alive(_dir(service) / "service.pid") for service in PROCESSES}


def log_file(service: str) -> Path:
    return _dir(service) / "service.log"
