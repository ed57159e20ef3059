"""Background processes of the local stack: started detached, tracked by a pid file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def pid_alive(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process still runs, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    # A broker started by this very process (the test suite) is our child: reap it once it has
    # exited, which also tells a finished JVM from one whose main thread alone has ended.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped = 0
    if reaped == pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def start_detached(
    argv: list[str],
    log_file: Path,
    pid_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` in its own session so it outlives this command; record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop(pid_file: Path, grace_seconds: float = 30.0) -> bool:
    """SIGTERM, wait for a clean exit, SIGKILL after ``grace_seconds``. True if it was running."""
    pid = pid_alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and pid_alive(pid_file) is not None:
        time.sleep(0.2)
    if pid_alive(pid_file) is not None:
        os.kill(pid, signal.SIGKILL)
        while pid_alive(pid_file) is not None:
            time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return True
