"""Signed links to a request's status page (in receipts and confirmations)."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from .models import UnsubscribeRequest

SALT = "lanzuan.status-link"
MAX_AGE = 60 * 60 * 24 * 400  # a person may come back to check for a long time


def status_token(request: UnsubscribeRequest) -> str:
    return signing.dumps({"r": request.reference, "t": request.tenant_id}, salt=SALT, compress=True)


def reference_from_token(token: str, tenant_id: int) -> str | None:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    if data.get("t") != tenant_id:
        return None
    return str(data.get("r"))


def status_url(request: UnsubscribeRequest, *, absolute: bool = True) -> str:
    path = reverse("unsubscribe-status", args=[request.tenant.slug]) + "?token=" + status_token(request)
    return settings.PUBLIC_BASE_URL + path if absolute else path
