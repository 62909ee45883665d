"""The one byte form of a JSON document that is signed or hashed.

Sorted keys, no spaces, UTF-8 (not \\u escapes), and no floats: a float has more than one
text form across languages and libraries, so a document with one could verify in Python and
fail elsewhere. Integers, strings, booleans, null, lists and objects only. Anyone can produce the
same bytes with `json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


class NotCanonical(ValueError):
    """The document holds something without one canonical form (a float, a non-string key)."""


def _check(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return
    if isinstance(value, float):
        raise NotCanonical(f"a float at {path or '/'}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}/{index}")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical(f"a key that is not a string at {path or '/'}")
            _check(item, f"{path}/{key}")
        return
    raise NotCanonical(f"a {type(value).__name__} at {path or '/'}")


def canonical_bytes(document: Any) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8. NotCanonical on a float."""
    _check(document, "")
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def instant(moment: datetime | None) -> str | None:
    """A time as the receipt writes it: UTC, to the second, with "Z"."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
