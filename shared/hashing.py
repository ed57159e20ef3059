"""The hash chain that makes the log tamper-evident.

``hash`` = lower-case hex SHA-256 of the 64 ASCII hex characters of ``prev_hash`` followed by
the RFC 8785 (JCS) canonical JSON of the envelope without ``hash``. It is computed over the
envelope exactly as it travels (the decoded JSON object, not a re-serialised model), so any
auditor with any JCS implementation recomputes the same value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson
import rfc8785

# Sorted keys, and a TypeError for any integer outside JCS's domain (|n| <= 2**53 - 1, the
# integers an IEEE double holds exactly) or any value that is neither a dict, list, str, int,
# bool nor None (subclasses and dataclasses included, which orjson would otherwise write).
_SORTED_STRICT = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# The lead byte of a 4-byte UTF-8 sequence: a character outside the Basic Multilingual Plane.
_OUTSIDE_BMP = re.compile(rb"[\xf0-\xf4]")


def orjson_canonical(value: Any) -> bytes | None:
    """orjson's sorted output of ``value`` when it is byte for byte RFC 8785, else None.

    The two write strings (the same escapes: ``\\" \\\\ \\b \\f \\n \\r \\t``, ``\\u00xx``
    lower-case for the other control characters, everything else as UTF-8), booleans, null
    and safe integers alike. They differ on floats (JCS writes them the ECMAScript way) and on
    key order when a key holds a character outside the BMP (JCS sorts by UTF-16 code units,
    orjson by code points). Both are found in the written bytes, without walking the value:
    any float, or any such character anywhere (not only in keys), sends it to the reference.
    Meant for JSON values (what ``orjson.loads`` returns); of other Python values orjson writes
    a UUID, an enum or a tuple as their JSON forms and NaN as null, where the reference refuses.
    """
    try:
        written = orjson.dumps(value, option=_SORTED_STRICT)
    except TypeError:  # orjson.JSONEncodeError: an integer or a type outside the fast path
        return None
    if not written.isascii() and _OUTSIDE_BMP.search(written):
        return None
    if _holds_float(written):
        return None
    return written


def _holds_float(written: bytes) -> bool:
    """Whether orjson's compact output holds a float: outside its strings, every float has a
    '.' or an 'e' (orjson writes ``1.0``, ``1e+20``), and nothing else does but true/false."""
    # Without a backslash the quotes alternate, so every other piece is outside a string; an
    # escaped quote would throw that off, and then the strings are cut out exactly.
    escaped = b"\\" in written
    outside = _STRING.sub(b"", written) if escaped else b"".join(written.split(b'"')[::2])
    return (
        b"." in outside
        or b"E" in outside
        or (b"e" in outside and b"e" in outside.replace(b"true", b"").replace(b"false", b""))
    )


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON: orjson where it provably agrees, the reference otherwise."""
    plain = value if type(value) is dict else dict(value)
    fast = orjson_canonical(plain)
    return fast if fast is not None else bytes(rfc8785.dumps(plain))


def compute_hash(unsealed: Mapping[str, Any]) -> str:
    """The hash of an envelope given without its ``hash`` field."""
    prev_hash = unsealed.get("prev_hash")
    if not isinstance(prev_hash, str) or len(prev_hash) != 64:
        raise ValueError("prev_hash must be 64 hexadecimal characters")
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(unsealed))
    return digest.hexdigest()
