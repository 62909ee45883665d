"""Per-tenant phone digests (issue 19, item 16): every digest a tenant's rows keep becomes
that tenant's own, so two tenants' records of one number no longer share a value.

Before: the platform digest P = HMAC-SHA256(PHONE_HASH_KEY, e164) everywhere.
After:  T = HMAC-SHA256(K_t, P) with K_t = HMAC-SHA256(PHONE_HASH_KEY, "tenant-digest:<tenant id>")
(lanzuan/phones.py). T is computed from the stored P, so no number is needed and nothing is
lost: a suppression added before still matches. Unroutable replies (no tenant) keep P.

Idempotency fingerprints (an unkeyed SHA-256 over the number and the request, the same at every
tenant for the same ask) are dropped. One-time codes still waiting for their code are expired (their
code hash was keyed with P: the person asks for a new code). Forward only: T cannot be turned back
into P. Run it with the web processes and workers stopped (they would write P meanwhile).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from django.conf import settings
from django.db import migrations
from django.db.migrations.exceptions import IrreversibleError
from django.utils import timezone

BATCH = 5000
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CLARIFY_KEY = re.compile(r"^inbound-clarify:([0-9a-f]{64}):")

# (app label, model, digest field): every tenant-owned digest of a number.
TENANT_DIGESTS = [
    ("unsubscribe", "Subscription", "phone_hash"),
    ("unsubscribe", "SubscriberProfile", "phone_hash"),
    ("unsubscribe", "UnsubscribeRequest", "phone_hash"),
    ("unsubscribe", "HistoricalUnsubscribeRequest", "phone_hash"),
    ("unsubscribe", "Suppression", "phone_hash"),
    ("unsubscribe", "SuppressionEvent", "phone_hash"),
    ("optout", "PhoneVerification", "phone_hash"),
    ("inbound", "InboundMessage", "from_hash"),
    ("voice", "VoiceCall", "caller_hash"),
    ("notifications", "Message", "to_hash"),
]


class _Converter:
    """P (hex) → T (hex) for a tenant; a frozen copy of lanzuan.phones' derivation, so that a
    later change there cannot change what this migration did."""

    def __init__(self) -> None:
        self.key = settings.PHONE_HASH_KEY.encode()
        self.tenant_keys: dict[int, bytes] = {}

    def __call__(self, tenant_id: int, old: str) -> str:
        if not HEX64.match(old or ""):
            return old  # blank (a withheld caller) or not a digest we wrote: left as it is
        tenant_key = self.tenant_keys.get(tenant_id)
        if tenant_key is None:
            message = b"tenant-digest:" + str(int(tenant_id)).encode()
            tenant_key = self.tenant_keys[tenant_id] = hmac.digest(self.key, message, "sha256")
        return hmac.new(tenant_key, bytes.fromhex(old), hashlib.sha256).hexdigest()


def _batches(model: Any, fields: list[str]) -> Any:
    last = None
    pk = model._meta.pk.name
    while True:
        qs = model._base_manager.order_by(pk)
        if last is not None:
            qs = qs.filter(**{f"{pk}__gt": last})
        rows = list(qs.values_list(pk, "tenant_id", *fields)[:BATCH])
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _payload_converted(value: Any, tenant_id: int, convert: _Converter) -> Any:
    if isinstance(value, dict):
        return {
            k: convert(tenant_id, v)
            if k == "phone_hash" and isinstance(v, str)
            else _payload_converted(v, tenant_id, convert)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_payload_converted(v, tenant_id, convert) for v in value]
    return value


def forward(apps: Any, schema_editor: Any) -> None:
    convert = _Converter()
    for app_label, model_name, field in TENANT_DIGESTS:
        model = apps.get_model(app_label, model_name)
        extra = ["dedupe_key"] if model_name == "Message" else []
        for rows in _batches(model, [field, *extra]):
            changed = []
            for pk, tenant_id, old, *rest in rows:
                values = {field: convert(tenant_id, old)}
                if extra:
                    # A clarification's de-duplication key names the sender's digest.
                    key = rest[0] or ""
                    match = CLARIFY_KEY.match(key)
                    values["dedupe_key"] = (
                        key.replace(match.group(1), convert(tenant_id, match.group(1)), 1) if match else key
                    )
                if values != dict(zip([field, *extra], [old, *rest], strict=True)):
                    changed.append(model(pk=pk, **values))
            if changed:
                model._base_manager.bulk_update(changed, [field, *extra])

    # Webhook deliveries carry the digest in their stored payload.
    Delivery = apps.get_model("partner", "WebhookDelivery")
    for rows in _batches(Delivery, ["payload"]):
        changed = []
        for pk, tenant_id, payload in rows:
            new = _payload_converted(payload, tenant_id, convert)
            if new != payload:
                changed.append(Delivery(pk=pk, payload=new))
        if changed:
            Delivery._base_manager.bulk_update(changed, ["payload"])

    # Idempotency fingerprints were a plain SHA-256 over the number and the request's fields: the same
    # at every tenant for the same ask, and reversible by trying every number. New ones name the
    # number by the tenant digest; the old ones are dropped (a repeated key is then matched by the key).
    for name in ("UnsubscribeRequest", "HistoricalUnsubscribeRequest"):
        apps.get_model("unsubscribe", name)._base_manager.exclude(request_fingerprint="").update(request_fingerprint="")

    # A code waiting to be typed was hashed with P: it would now read as wrong.
    Verification = apps.get_model("optout", "PhoneVerification")
    now = timezone.now()
    Verification._base_manager.filter(verified_at=None, used_at=None, expires_at__gt=now).update(
        expires_at=now
    )


def backward(apps: Any, schema_editor: Any) -> None:
    for app_label, model_name, field in TENANT_DIGESTS:
        model = apps.get_model(app_label, model_name)
        if model._base_manager.exclude(**{field: ""}).exists():
            raise IrreversibleError(
                "Tenant digests cannot be turned back into platform digests (both are one-way and"
                " the numbers are gone): restore the backup taken before this migration instead."
            )
    # Nothing stored (a fresh database): nothing to convert back.


class Migration(migrations.Migration):
    dependencies = [
        ("unsubscribe", "0019_target_secret_encrypted"),
        ("notifications", "0007_gateway_secret_encrypted"),
        ("inbound", "0005_inb2_number_sweep_schedule"),
        ("optout", "0004_i18n_labels"),
        ("voice", "0004_i18n_labels"),
        ("partner", "0005_i18n_labels"),
    ]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
