"""Locks on one number of one tenant, shared by filing (unsubscribe.requests) and the
pipeline's confirmation step."""

from __future__ import annotations

import hashlib

from django.db import connection


def number_lock(tenant_id: int, phone_hash: str, purpose: str) -> None:
    """Inside a transaction: serialise work on one number of one tenant until commit.
    On PostgreSQL a transaction-level advisory lock; SQLite runs every write
    transaction IMMEDIATE (settings), which already serialises writers."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"lanzuan-{purpose}:{tenant_id}:{phone_hash}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])
