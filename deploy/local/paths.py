"""Where the local stack keeps its downloads, data, logs and process ids.

Everything lives outside the checkout, under one directory per machine (``BERLIAN_HOME``), so
that every clone on the machine (a developer's, CI's) shares one running stack and one cache.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DIR = Path(__file__).resolve().parent


def berlian_home() -> Path:
    return Path(os.environ.get("BERLIAN_HOME", str(Path.home() / ".cache" / "berlian")))


def run_dir() -> Path:
    """Data, logs and process ids of the running stack."""
    return berlian_home() / "run"
