"""The platform's Ed25519 signing keys (lanzuan/signing_keys.py) and their published URL.

What is signed verifies with the key the published list names; a rotated key keeps what it
signed verifiable; production refuses to start without a key, development generates one once.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lanzuan import signing_keys

from .test_production import production_env
from .workers import ROOT

if TYPE_CHECKING:
    from pathlib import Path

    from django.test import Client
    from pytest_django import Settings

KEY_A = signing_keys.new_private_key()
KEY_B = signing_keys.new_private_key()


def public_of(private_b64: str) -> str:
    """The base64 raw public key of a configured private key, as an operator would derive it."""
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_b64))
    return base64.b64encode(private.public_key().public_bytes_raw()).decode()


def offline_verify(published: dict[str, str], data: bytes, value_b64: str) -> bool:
    """What the README tells a verifier to do: only the published key and `cryptography`."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(published["public_key"]))
    try:
        key.verify(base64.b64decode(value_b64), data)
    except InvalidSignature:
        return False
    return True


def test_a_signature_verifies_with_the_published_key_and_nothing_else_does(
    client: Client, settings: Settings
) -> None:
    # given
    settings.LANZUAN_SIGNING_KEYS = [KEY_A]
    data = b'{"hash":"ab","seq":1,"tenant":"acme"}'

    # when
    signature = signing_keys.sign(data)
    response = client.get("/.well-known/lanzuan-keys.json")

    # then
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    keys = response.json()["keys"]
    assert keys == [
        {"kid": signature.key_id, "alg": "Ed25519", "public_key": public_of(KEY_A), "status": "active"}
    ]
    assert signing_keys.verify(data, signature.key_id, signature.value_b64)
    assert offline_verify(keys[0], data, signature.value_b64)
    assert not signing_keys.verify(data + b" ", signature.key_id, signature.value_b64)
    assert not offline_verify(keys[0], data + b" ", signature.value_b64)
    assert not signing_keys.verify(data, "0000000000000000", signature.value_b64)
    assert not signing_keys.verify(data, signature.key_id, "not base64!")
    assert not signing_keys.verify(data, signature.key_id, base64.b64encode(b"x" * 64).decode())


@hypothesis_settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=256), flip=st.integers(min_value=0, max_value=63))
def test_any_altered_signature_fails(data: bytes, flip: int) -> None:
    signature = signing_keys.sign(data)
    assert signing_keys.verify(data, signature.key_id, signature.value_b64)
    raw = bytearray(base64.b64decode(signature.value_b64))
    raw[flip] ^= 0x01
    assert not signing_keys.verify(data, signature.key_id, base64.b64encode(bytes(raw)).decode())


def test_a_rotated_key_keeps_what_it_signed_verifiable(client: Client, settings: Settings) -> None:
    # given: something signed with key A
    settings.LANZUAN_SIGNING_KEYS = [KEY_A]
    old = signing_keys.sign(b"old checkpoint")

    # when: B goes first, A stays after it
    settings.LANZUAN_SIGNING_KEYS = [KEY_B, KEY_A]
    new = signing_keys.sign(b"new checkpoint")

    # then: B signs, both verify, both are published
    assert new.key_id != old.key_id
    assert signing_keys.verify(b"old checkpoint", old.key_id, old.value_b64)
    assert signing_keys.verify(b"new checkpoint", new.key_id, new.value_b64)
    keys = client.get("/.well-known/lanzuan-keys.json").json()["keys"]
    assert [(k["kid"], k["status"]) for k in keys] == [(new.key_id, "active"), (old.key_id, "retired")]

    # when: A's private half is dropped, its public key kept as retired
    settings.LANZUAN_SIGNING_KEYS = [KEY_B]
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = [public_of(KEY_A)]

    # then: the old signature still verifies, online and offline, and A can no longer sign
    assert signing_keys.verify(b"old checkpoint", old.key_id, old.value_b64)
    keys = client.get("/.well-known/lanzuan-keys.json").json()["keys"]
    retired = next(k for k in keys if k["kid"] == old.key_id)
    assert retired["status"] == "retired"
    assert offline_verify(retired, b"old checkpoint", old.value_b64)
    assert signing_keys.sign(b"x").key_id == new.key_id

    # when: A is forgotten entirely, what it signed no longer verifies
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = []
    assert not signing_keys.verify(b"old checkpoint", old.key_id, old.value_b64)


def test_development_generates_one_key_into_the_var_dir(settings: Settings, tmp_path: Path) -> None:
    # given: DEBUG on, no key configured
    settings.DEBUG = True
    settings.LANZUAN_SIGNING_KEYS = []
    settings.VAR_DIR = tmp_path

    # when
    first = signing_keys.sign(b"data")
    second = signing_keys.sign(b"data")

    # then: one key, kept under the var dir, readable only by its owner
    assert first == second
    key_file = tmp_path / "signing_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert signing_keys.public_keys()[0]["public_key"] == public_of(key_file.read_text())
    assert [m.id for m in signing_keys.check_signing_keys()] == ["lanzuan.W003"]


def test_production_refuses_to_sign_without_a_key(settings: Settings) -> None:
    settings.DEBUG = False
    settings.LANZUAN_SIGNING_KEYS = []
    assert [m.id for m in signing_keys.check_signing_keys()] == ["lanzuan.E003"]
    with pytest.raises(ImproperlyConfigured, match="LANZUAN_SIGNING_KEYS"):
        signing_keys.sign(b"data")


@pytest.mark.parametrize(
    ("private", "retired"),
    [(["not base64!"], []), ([base64.b64encode(b"short").decode()], []), ([KEY_A], ["AAAA"])],
)
def test_a_malformed_key_is_a_check_error(settings: Settings, private: list[str], retired: list[str]) -> None:
    settings.LANZUAN_SIGNING_KEYS = private
    settings.LANZUAN_RETIRED_PUBLIC_KEYS = retired
    assert [m.id for m in signing_keys.check_signing_keys()] == ["lanzuan.E004"]


def test_url_safe_and_unpadded_keys_are_accepted(settings: Settings) -> None:
    settings.LANZUAN_SIGNING_KEYS = [KEY_A.replace("+", "-").replace("/", "_").rstrip("=")]
    assert signing_keys.check_signing_keys() == []
    assert signing_keys.public_keys()[0]["public_key"] == public_of(KEY_A)


def test_check_deploy_fails_without_signing_keys(tmp_path: Path) -> None:
    env = production_env(LANZUAN_VAR_DIR=str(tmp_path))
    env.pop("LANZUAN_SIGNING_KEYS", None)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "lanzuan.E003" in result.stderr and "LANZUAN_SIGNING_KEYS" in result.stderr
