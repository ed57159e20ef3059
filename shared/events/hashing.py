"""The hash chain that makes the log tamper-evident.

``hash`` = lower-case hex SHA-256 of the 64 ASCII hex characters of ``prev_hash`` followed by
the RFC 8785 (JCS) canonical JSON of the envelope without ``hash``. It is computed over the
envelope exactly as it travels (the decoded JSON object, not a re-serialised model), so any
auditor with any JCS implementation recomputes the same value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

# JCS represents numbers as IEEE doubles: integers beyond this are outside its domain.
_JCS_SAFE_INTEGER = 2**53 - 1


def _fast_path_agrees(value: Any) -> bool:
    """True if orjson with sorted keys writes exactly JCS for ``value``.

    The two agree on strings, booleans, null, safe integers and key order as long as no key
    holds a character outside the Basic Multilingual Plane (JCS sorts by UTF-16 code units,
    orjson by code points, which differ only there) and no number is a float (JCS formats
    those the ECMAScript way).
    """
    if isinstance(value, dict):
        return all(
            (key.isascii() or max(map(ord, key)) < 0x10000) and _fast_path_agrees(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return all(_fast_path_agrees(item) for item in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -_JCS_SAFE_INTEGER <= value <= _JCS_SAFE_INTEGER
    return False


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON: orjson where it provably agrees, the reference otherwise."""
    plain = dict(value)
    if _fast_path_agrees(plain):
        return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
    return bytes(rfc8785.dumps(plain))


def compute_hash(unsealed: Mapping[str, Any]) -> str:
    """The hash of an envelope given without its ``hash`` field."""
    prev_hash = unsealed.get("prev_hash")
    if not isinstance(prev_hash, str) or len(prev_hash) != 64:
        raise ValueError("prev_hash must be 64 hexadecimal characters")
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(unsealed))
    return digest.hexdigest()
