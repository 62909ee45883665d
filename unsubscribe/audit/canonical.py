"""Canonical JSON and the digests of the audit record.

One byte string per value, whatever the dict order and wherever the row was read from (an
instance about to be saved, or the row read back by `audit_verify`): keys sorted, no spaces,
UTF-8, times in UTC ISO 8601, decimals and UUIDs as strings. An entry's payload holds no float
(a float's text is not one value on every platform): `payload_check` refuses one.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from typing import Any

from django.db import models
from django.utils.functional import Promise

GENESIS_HASH = "0" * 64


def _datetime(value: dt.datetime) -> str:
    return (value.astimezone(dt.UTC) if value.tzinfo is not None else value).isoformat()


# Scalars other than JSON's own, by type: the text that stands for them.
_SCALARS: tuple[tuple[type | tuple[type, ...], Any], ...] = (
    (dt.datetime, _datetime),  # before date: a datetime is a date
    ((dt.date, dt.time), lambda v: v.isoformat()),
    (decimal.Decimal, lambda v: str(v.normalize())),
    (uuid.UUID, str),
    ((bytes, memoryview), lambda v: bytes(v).hex()),
    (Promise, str),
)


def plain(value: Any, *, floats: bool = True) -> Any:
    """`value` as JSON types only, the same for a value in memory and the value read back."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not floats:
            raise TypeError("an audit payload holds no float: use an integer or a string")
        return f"float:{value!r}"
    if isinstance(value, dict):
        return {str(key): plain(item, floats=floats) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item, floats=floats) for item in value]
    for kind, text in _SCALARS:
        if isinstance(value, kind):
            return text(value)
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical(value: Any) -> bytes:
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload_check(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as stored: JSON types only, no float."""
    checked: dict[str, Any] = plain(payload, floats=False)
    return checked


def row_content(instance: models.Model) -> dict[str, Any]:
    """Every concrete column of a row, by column attribute name (`tenant_id`, not `tenant`)."""
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def row_digest(instance: models.Model) -> str:
    """SHA-256 of a row's canonical content: what an entry commits to and verification re-reads."""
    return sha256(canonical(row_content(instance)))


def entry_content(
    *,
    tenant_id: int,
    seq: int,
    kind: str,
    object_model: str,
    object_id: str,
    reference: str,
    actor: str,
    payload: dict[str, Any],
    record_digest: str,
    created_at: dt.datetime,
) -> bytes:
    return canonical(
        {
            "tenant": tenant_id,
            "seq": seq,
            "kind": kind,
            "object_model": object_model,
            "object_id": object_id,
            "reference": reference,
            "actor": actor,
            "payload": payload,
            "record_digest": record_digest,
            "created_at": created_at,
        }
    )


def entry_hash(content: bytes, prev_hash: str) -> str:
    """hash = SHA-256(canonical(content) || prev_hash)."""
    return sha256(content + prev_hash.encode("ascii"))
