"""Human-readable receipt references: short, unambiguous (no 0/O, 1/I/L), easy to read aloud."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_reference() -> str:
    """'K7M2-9QXP': 31^8 ≈ 8.5e11 possibilities, grouped in fours for reading aloud."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def clean_reference(text: str) -> str:
    """What a person typed ('k7m2 9qxp', 'K7M29QXP') → canonical 'K7M2-9QXP'."""
    raw = "".join(ch for ch in (text or "").upper() if ch.isalnum())
    if len(raw) != 8:
        return raw[:20]
    return f"{raw[:4]}-{raw[4:]}"
