"""Secrets at rest: `EncryptedTextField` and the keys it uses.

Gateway tokens, signing secrets and webhook credentials are stored encrypted with
Fernet (AES-128-CBC with HMAC-SHA256) under the keys in `LANZUAN_FIELD_KEYS`
(settings; comma-separated Fernet keys): the first key encrypts, every key decrypts
(`MultiFernet`), so a key is rotated by putting a new one first, running
`manage.py rotate_field_keys` and then dropping the old one. The column holds
`fernet1:<token>`; the marker names the scheme, so another one can follow. An empty
value stays empty (a gateway that needs no secret), so `secret=""` still filters.

The model instance holds the clear text (decrypted in `from_db_value`, encrypted in
`get_prep_value`): services, forms and gateways read and write it as before. Every
encryption uses a fresh IV, so a secret cannot be looked up by value.

With no key and DEBUG on, a key is derived from SECRET_KEY (development; the system
check warns); with no key and DEBUG off, the check is an error and any use of a
secret raises ImproperlyConfigured.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

MARKER = "fernet1:"


def derived_key(secret_key: str) -> str:
    """The development key: a Fernet key derived from SECRET_KEY (used only with DEBUG on)."""
    digest = hashlib.sha256(b"lanzuan.fields\x00" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def field_keys() -> tuple[str, ...]:
    keys: list[str] = list(getattr(settings, "LANZUAN_FIELD_KEYS", None) or [])
    if keys:
        return tuple(keys)
    if settings.DEBUG:
        return (derived_key(settings.SECRET_KEY),)
    raise ImproperlyConfigured(
        "LANZUAN_FIELD_KEYS is required when DEBUG is off: stored secrets are encrypted with it (README)."
    )


@functools.lru_cache(maxsize=8)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return plaintext
    return MARKER + _fernet(field_keys()).encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    """The clear text of a stored value. A value without the marker is a row from before
    encryption (the migrations and `rotate_field_keys` encrypt those) and is returned as is."""
    if not stored.startswith(MARKER):
        return stored
    try:
        return _fernet(field_keys()).decrypt(stored[len(MARKER) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in LANZUAN_FIELD_KEYS "
            "(was a key dropped before rotate_field_keys ran?)"
        ) from None


def reencrypt(stored: str) -> str:
    """The value under the first key: `rotate_field_keys` and the migrations."""
    if not stored:
        return stored
    if not stored.startswith(MARKER):
        return encrypt(stored)
    try:
        token = _fernet(field_keys()).rotate(stored[len(MARKER) :].encode())
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in LANZUAN_FIELD_KEYS"
        ) from None
    return MARKER + token.decode()


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]  # str in, str out
    """A secret, encrypted in the database and clear in Python. Its form field is a
    password input that never renders the value back."""

    description = "Text encrypted at rest (Fernet)"

    def from_db_value(
        self, value: str | None, expression: Any, connection: BaseDatabaseWrapper
    ) -> str | None:
        return value if value is None else decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return value if value is None else encrypt(value)

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        kwargs.setdefault(
            "widget", forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        )
        return super().formfield(
            form_class=form_class or forms.CharField, choices_form_class=choices_form_class, **kwargs
        )


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedTextField]]:
    """Every (model, field) stored encrypted, in every installed app."""
    from django.apps import apps  # noqa: PLC0415 — the registry is ready only once settings are

    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    ]


def rewrite_column(
    connection: BaseDatabaseWrapper, model: type[models.Model], field_name: str, change: Callable[[str], str]
) -> int:
    """Apply `change` to every non-empty stored value of one column, in raw SQL (no history
    rows, no `updated_at`, no tenant scope): the migrations and `rotate_field_keys`.
    Run it inside a transaction. Returns the number of rows rewritten."""
    qn = connection.ops.quote_name
    field = model._meta.get_field(field_name)
    assert isinstance(field, models.Field) and field.column and model._meta.pk is not None
    table, column, pk = qn(model._meta.db_table), qn(field.column), qn(model._meta.pk.column)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    changed = 0
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} <> ''{lock}")  # noqa: S608 — quoted names
        for row_pk, stored in cursor.fetchall():
            new = change(stored)
            if new != stored:
                cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", [new, row_pk])  # noqa: S608
                changed += 1
    return changed


def field_keys_rotate() -> dict[str, int]:
    """Re-encrypt every stored secret under the first key of LANZUAN_FIELD_KEYS (and encrypt
    any left in clear text), one table per transaction. Returns rows rewritten by
    "<table>.<column>". Raises ImproperlyConfigured, leaving that table as it was, when a
    value cannot be decrypted with any key."""
    from django.db import connections, router, transaction  # noqa: PLC0415 — only for this command

    rewritten: dict[str, int] = {}
    for model, field in encrypted_fields():
        alias = router.db_for_write(model)
        column = f"{model._meta.db_table}.{field.column}"
        try:
            with transaction.atomic(using=alias):
                rewritten[column] = rewrite_column(connections[alias], model, field.name, reencrypt)
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"{column}: {exc}") from None
    return rewritten


def encrypt_column(app_label: str, model_name: str, *field_names: str) -> Callable[[Any, Any], None]:
    """A migration's forward function: encrypt the rows stored in clear text."""

    def run(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        for name in field_names:
            rewrite_column(schema_editor.connection, model, name, reencrypt)

    return run


def decrypt_column(app_label: str, model_name: str, *field_names: str) -> Callable[[Any, Any], None]:
    """A migration's reverse function: back to clear text."""

    def run(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        for name in field_names:
            rewrite_column(schema_editor.connection, model, name, decrypt)

    return run


def check_field_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Registered by tenants.apps: no key with DEBUG off stops `check`, `migrate` and `runserver`."""
    keys: list[str] = list(getattr(settings, "LANZUAN_FIELD_KEYS", None) or [])
    if not keys:
        if settings.DEBUG:
            return [
                Warning(
                    "LANZUAN_FIELD_KEYS is not set: stored secrets are encrypted with a key derived "
                    "from SECRET_KEY (development only).",
                    id="lanzuan.W001",
                )
            ]
        return [
            Error(
                "LANZUAN_FIELD_KEYS is not set: stored secrets cannot be encrypted.",
                hint='Set it to a Fernet key: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"',
                id="lanzuan.E001",
            )
        ]
    errors: list[CheckMessage] = []
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            errors.append(
                Error(
                    f"LANZUAN_FIELD_KEYS: key {number} is not a Fernet key (32 bytes, url-safe base64).",
                    id="lanzuan.E002",
                )
            )
    return errors
