"""Debian packages the local stack and its tests need, installed when missing."""

from __future__ import annotations

import os
import subprocess

from deploy.local.errors import StackError


def apt_install(packages: list[str], why: str) -> None:
    if os.geteuid() != 0:
        raise StackError(
            f"{why} needs {', '.join(packages)}, and installing them needs root: run "
            f"'sudo apt-get install {' '.join(packages)}'."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise StackError(
                f"{', '.join(packages)} could not be installed with apt-get (are Debian's "
                f"package mirrors reachable?): {(result.stderr or result.stdout).strip()[-300:]}"
            )
