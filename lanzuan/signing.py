"""HMAC-SHA256 signatures over timestamp and body, the one scheme every outbound call uses.

    X-Lanzuan-Timestamp: 1732500000
    X-Lanzuan-Signature: v1=hex(hmac_sha256(secret, f"{timestamp}.{body}"))

A receiver recomputes the HMAC over the raw body and rejects timestamps older than
five minutes (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Lanzuan-Timestamp"
SIGNATURE_HEADER = "X-Lanzuan-Signature"
MAX_AGE_SECONDS = 300


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, timestamp: str, body: bytes, received: str, now: float | None = None) -> bool:
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except (TypeError, ValueError):
        return False
    if age > MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), received or "")
