"""The platform's Ed25519 signing keys: what signs audit checkpoints and receipts.

`LANZUAN_SIGNING_KEYS` (settings) holds one or more base64 raw (32-byte) private keys,
comma-separated: the first signs, every one verifies. `LANZUAN_RETIRED_PUBLIC_KEYS` holds
base64 raw public keys whose private halves are gone: they only verify. So a key is rotated by
putting a new key first and keeping the old one after it (or only its public key in
`LANZUAN_RETIRED_PUBLIC_KEYS`): what the old key signed stays verifiable for good.

Every public key is published at `/.well-known/lanzuan-keys.json` (`lanzuan/well_known.py`),
each with its key id: the first 16 hex digits of the SHA-256 of the raw public key. A signature
names its key id, so anyone can check it offline with the published key.

With no key and DEBUG on (`make run`), a key is generated once into `LANZUAN_VAR_DIR/signing_key`.
With no key and DEBUG off, the system check is an error (`lanzuan.E003`: `check`, `migrate` and
`runserver` stop) and any signature raises ImproperlyConfigured. Signing with a key made on the
fly would sign a record nobody could check later.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured

ALGORITHM = "Ed25519"
KEY_FILE = "signing_key"


@dataclass(frozen=True)
class Signature:
    key_id: str
    value_b64: str


@dataclass(frozen=True)
class _PublicKey:
    kid: str
    key: Ed25519PublicKey
    raw_b64: str
    status: Literal["active", "retired"]


@dataclass(frozen=True)
class _Keyring:
    signer: Ed25519PrivateKey
    signer_kid: str
    public: tuple[_PublicKey, ...]

    def find(self, kid: str) -> _PublicKey | None:
        return next((key for key in self.public if key.kid == kid), None)


def new_private_key() -> str:
    """A fresh private key, base64 of its 32 raw bytes: a value for LANZUAN_SIGNING_KEYS."""
    return _b64(Ed25519PrivateKey.generate().private_bytes_raw())


def key_id(public_raw: bytes) -> str:
    """A short fingerprint of a raw public key."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def sign(data: bytes) -> Signature:
    """Sign `data` with the first key of LANZUAN_SIGNING_KEYS."""
    ring = _keyring()
    return Signature(key_id=ring.signer_kid, value_b64=_b64(ring.signer.sign(data)))


def verify(data: bytes, key_id: str, value_b64: str) -> bool:
    """Whether `value_b64` is a signature of `data` by the published key `key_id`
    (the signing key, an older one still configured, or a retired public key)."""
    key = _keyring().find(key_id)
    if key is None:
        return False
    try:
        signature = base64.b64decode(value_b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    try:
        key.key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def public_keys() -> list[dict[str, str]]:
    """Every key that verifies, as published at /.well-known/lanzuan-keys.json."""
    return [
        {"kid": key.kid, "alg": ALGORITHM, "public_key": key.raw_b64, "status": key.status}
        for key in _keyring().public
    ]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _raw32(value: str, what: str) -> bytes:
    # Standard or url-safe base64, padded or not: what `openssl` and `python -c` print.
    text = value.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{what} is not base64") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{what} is not a raw Ed25519 key (32 bytes, base64)")
    return raw


def _configured() -> tuple[tuple[str, ...], tuple[str, ...]]:
    private = tuple(getattr(settings, "LANZUAN_SIGNING_KEYS", None) or ())
    retired = tuple(getattr(settings, "LANZUAN_RETIRED_PUBLIC_KEYS", None) or ())
    return private, retired


def _development_key(var_dir: Path) -> str:
    """Generated once into the var dir (like SECRET_KEY's development key), never in git."""
    path = var_dir / KEY_FILE
    if not path.exists():
        # O_EXCL: two processes starting at once (web and worker) keep the one key written first.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_private_key())
    return path.read_text().strip()


def _keyring() -> _Keyring:
    private, retired = _configured()
    if not private:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "LANZUAN_SIGNING_KEYS is required when DEBUG is off: audit checkpoints and receipts "
                "are signed with it (README)."
            )
        private = (_development_key(Path(settings.VAR_DIR)),)
    return _build(private, retired)


@functools.lru_cache(maxsize=8)
def _build(private: tuple[str, ...], retired: tuple[str, ...]) -> _Keyring:
    keys: list[_PublicKey] = []
    seen: set[str] = set()
    signers = [
        Ed25519PrivateKey.from_private_bytes(_raw32(value, f"LANZUAN_SIGNING_KEYS: key {number}"))
        for number, value in enumerate(private, start=1)
    ]
    publics = [key.public_key() for key in signers] + [
        Ed25519PublicKey.from_public_bytes(_raw32(value, f"LANZUAN_RETIRED_PUBLIC_KEYS: key {number}"))
        for number, value in enumerate(retired, start=1)
    ]
    for position, public in enumerate(publics):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        kid = key_id(raw)
        if kid in seen:
            continue
        seen.add(kid)
        keys.append(_PublicKey(kid, public, _b64(raw), "active" if position == 0 else "retired"))
    return _Keyring(signer=signers[0], signer_kid=keys[0].kid, public=tuple(keys))


def check_signing_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Registered by tenants.apps: no key with DEBUG off stops `check`, `migrate` and `runserver`."""
    private, retired = _configured()
    if not private:
        if settings.DEBUG:
            return [
                Warning(
                    "LANZUAN_SIGNING_KEYS is not set: checkpoints and receipts are signed with a key "
                    f"generated into {Path(settings.VAR_DIR) / KEY_FILE} (development only).",
                    id="lanzuan.W003",
                )
            ]
        return [
            Error(
                "LANZUAN_SIGNING_KEYS is not set: audit checkpoints and receipts cannot be signed.",
                hint='Set it to an Ed25519 key: python -c "from lanzuan.signing_keys import new_private_key; '
                'print(new_private_key())"',
                id="lanzuan.E003",
            )
        ]
    try:
        _build(private, retired)
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="lanzuan.E004")]
    return []
