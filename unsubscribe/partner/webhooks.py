"""Event webhooks: signed POSTs to the endpoints a tenant registered.

Events: request.created, request.completed, request.needs_attention,
suppression.added, suppression.lifted (a verified re-subscribe: the scopes lifted, what
stays suppressed, the channel, verification method and evidence), request.deadline_breached
(the request's payload plus "deadline": regime, rule, due_at, met_at, breached_at; README,
"Deadlines by regime"), suppression.violated (a sender's send log shows messages sent after
the number's opt-out: phone_hash, reference, scopes, suppressed_at, messages, services,
first_sent_at, last_sent_at, detected_at; examples.SUPPRESSION_VIOLATED_PAYLOAD),
preference.recorded (a person chose an alternative to opting out:
"kind" fewer or channel, "scope" "*" or a service code, "channel" the one they prefer, with
phone_hash and phone_masked; README, "Alternatives"). A pause is a suppression.added with
"until", and a suppression.lifted with channel "pause" when it ends. Each is one JSON body,
never carrying the raw number:

    {"id": "<uuid, the same on every retry>", "event": "request.created",
     "created_at": "2025-01-01T08:00:00+00:00", "tenant": "acme",
     "data": {"reference": "K7M2-9QXP", "state": "suppressed", "channel": "app",
              "phone_hash": "<this tenant's digest, hex>", "phone_masked": "138****8000", ...}}

Signature (lanzuan.signing), on every attempt:

    X-Lanzuan-Timestamp: 1732500000                     (Unix seconds, fresh per attempt)
    X-Lanzuan-Signature: v1=hex(HMAC-SHA256(secret, "<timestamp>." + raw body))

also X-Lanzuan-Event, X-Lanzuan-Delivery (the event id, for de-duplication) and
X-Lanzuan-Attempt. A receiver recomputes the HMAC over the raw body bytes, compares
in constant time and rejects timestamps more than 5 minutes away:

    import hashlib, hmac, time
    def verify(secret: str, body: bytes, timestamp: str, signature: str) -> bool:
        mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        fresh = abs(time.time() - int(timestamp)) <= 300
        return fresh and hmac.compare_digest("v1=" + mac.hexdigest(), signature)

Delivery: a 2xx answer within 10 s is success; anything else is retried with
exponential backoff (30 s, 1 min, 2 min, … at most 1 h apart, jittered) for 24 h
after the event, then marked failed. Every delivery is a WebhookDelivery row
(attempts, next attempt, last response code and excerpt, last error), shown in the
admin and re-sendable from there ("Send again").

Rows are written inside the transaction that emitted the event, and the HTTP work
happens after commit (a Celery task per delivery id, on the "webhooks" queue, apart
from the opt-out pipeline's); the periodic sweep sends whatever is due and was not
sent (broker down, retries).

Fair across tenants (issue 19, item 8): a tenant has at most
LANZUAN_MAX_WEBHOOK_ENDPOINTS endpoints, and at most LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT
of its deliveries are queued or being sent at once. `webhook_deliveries_dispatch`
hands out a tenant's free slots, oldest due delivery first; it runs after the commit
that wrote the rows, after each attempt (the next of the tenant's backlog takes the
slot), and in the sweep, tenant by tenant, oldest waiting tenant first. So a fan-out
of thousands waits as rows, and another tenant's deliveries queue behind a handful
of them, not behind all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import outbound
from lanzuan.backoff import backoff_seconds
from lanzuan.dispatch import dispatch_or_leave_for_sweep
from lanzuan.outbound import UnsafeURL
from lanzuan.phones import redact
from lanzuan.signing import signed_headers
from tenants.models import Tenant
from unsubscribe.domain_events import EVENTS

from . import tasks  # by module: tasks imports this one
from .errors import TooManyWebhookEndpoints
from .models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

RETRY_WINDOW = timedelta(hours=24)
TIMEOUT_SECONDS = 10
LEASE = timedelta(seconds=TIMEOUT_SECONDS + 50)
STALE_DISPATCH = timedelta(minutes=2)
FIRST_RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 3600.0
RAW_NUMBER_KEYS = frozenset({"phone", "e164", "to", "number"})

Status = WebhookDelivery.Status
OPEN = (Status.PENDING, Status.RETRYING)


# --- endpoints ------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _tenant_lock(tenant_id: int, purpose: str) -> None:
    """Inside a transaction: serialise `purpose` for one tenant until commit. On
    PostgreSQL a transaction-level advisory lock; SQLite serialises writers already."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"lanzuan-{purpose}:{tenant_id}".encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def webhook_endpoint_limit_check(*, tenant_id: int) -> None:
    """Raise TooManyWebhookEndpoints when the tenant has no room for one more endpoint
    (LANZUAN_MAX_WEBHOOK_ENDPOINTS, switched-off endpoints included)."""
    limit: int = settings.LANZUAN_MAX_WEBHOOK_ENDPOINTS
    if WebhookEndpoint.objects.for_tenant(tenant_id).count() >= limit:
        raise TooManyWebhookEndpoints(
            _(
                "This tenant already has %(limit)d webhook endpoints, the most allowed. "
                "Remove one, or send several events to the same endpoint."
            )
            % {"limit": limit},
            title=_("Too many webhook endpoints"),
            limit=limit,
        )


def webhook_endpoint_create(
    *,
    tenant: Tenant,
    url: str,
    events: list[str],
    secret: str | None = None,
    description: str = "",
    is_active: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (generated when not given),
    which is never shown again. The one place endpoints are made (API and admin):
    raises TooManyWebhookEndpoints past LANZUAN_MAX_WEBHOOK_ENDPOINTS."""
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ValueError(f"unknown events: {unknown}")
    secret = secret or new_secret()
    with transaction.atomic():
        _tenant_lock(tenant.pk, "webhook-endpoints")  # two creates at once cannot both take the last place
        webhook_endpoint_limit_check(tenant_id=tenant.pk)
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant,
            url=url,
            events=sorted(set(events), key=EVENTS.index),
            secret=secret,
            description=description,
            is_active=is_active,
        )
    return endpoint, secret


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery log; nothing more is sent to it."""
    endpoint.delete()


# --- events → deliveries -----------------------------------------------------------


def _without_raw_numbers(value: Any) -> Any:
    # The core's payloads carry only hashes and masks; this keeps a future field
    # with a raw number from ever leaving the platform in a webhook.
    if isinstance(value, dict):
        return {k: _without_raw_numbers(v) for k, v in value.items() if k not in RAW_NUMBER_KEYS}
    if isinstance(value, list):
        return [_without_raw_numbers(v) for v in value]
    return value


def on_domain_event(tenant_id: int, event: str, payload: dict[str, Any]) -> None:
    """unsubscribe.domain_events handler: runs inside the emitting transaction, so the
    delivery rows commit (or roll back) with the change; sending waits for commit."""
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.for_tenant(tenant_id).filter(is_active=True)
        if endpoint.wants(event)
    ]
    if not endpoints:
        return
    now = timezone.now()
    data = _without_raw_numbers(payload)
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                tenant_id=tenant_id,
                endpoint=endpoint,
                event=event,
                payload=data,
                next_attempt_at=now,
                give_up_at=now + RETRY_WINDOW,
                created_at=now,
            )
            for endpoint in endpoints
        ]
    )
    # as many as the tenant's free slots now; the rest as those finish (fair dispatch)
    transaction.on_commit(lambda: webhook_deliveries_dispatch(tenant_id=tenant_id))


# --- fair dispatch -------------------------------------------------------------------


def _in_flight(now: datetime) -> Q:
    """Open deliveries queued recently for their current attempt, or being sent."""
    return Q(lease_until__gt=now) | Q(
        dispatched_at__gt=now - STALE_DISPATCH, dispatched_at__gte=F("next_attempt_at")
    )


def _due(now: datetime) -> Q:
    """Open deliveries to queue: their time has come, nobody sends them, and they were
    never queued for this attempt (or so long ago that the broker lost them)."""
    return (
        Q(next_attempt_at__lte=now)
        & (Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        & (
            Q(dispatched_at__isnull=True)
            | Q(dispatched_at__lte=now - STALE_DISPATCH)
            | Q(dispatched_at__lt=F("next_attempt_at"))
        )
    )


def webhook_deliveries_dispatch(*, tenant_id: int, limit: int | None = None) -> int:
    """Queue the tenant's due deliveries, oldest first, into its free slots: at most
    LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT queued or being sent at once (and at most
    `limit` now). Call after commit. Returns how many were queued; never raises: with
    the broker down they stay due for the sweep."""
    now = timezone.now()
    slots: int = settings.LANZUAN_WEBHOOK_IN_FLIGHT_PER_TENANT
    with transaction.atomic():
        _tenant_lock(tenant_id, "webhook-dispatch")  # two dispatchers cannot hand out one slot twice
        open_ = WebhookDelivery.objects.for_tenant(tenant_id).filter(status__in=OPEN)
        free = slots - open_.filter(_in_flight(now)).count()
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return 0
        ids = list(
            open_.filter(_due(now)).order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:free]
        )
        WebhookDelivery.objects.for_tenant(tenant_id).filter(pk__in=ids).update(dispatched_at=now)
    for queued, delivery_id in enumerate(ids):
        if not dispatch_or_leave_for_sweep(
            tasks.deliver_webhook, delivery_id, what=f"webhook delivery {delivery_id}"
        ):
            # the broker is down: give the slots back; the sweep queues these later
            WebhookDelivery.objects.for_tenant(tenant_id).filter(
                pk__in=ids[queued:], dispatched_at=now
            ).update(dispatched_at=None)
            return queued
    return len(ids)


# --- sending -----------------------------------------------------------------------


def delivery_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps(
        {
            "id": str(delivery.event_id),
            "event": delivery.event,
            "created_at": delivery.created_at.isoformat(),
            "tenant": delivery.tenant.slug,
            "data": delivery.payload,
        },
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def retry_delay(attempt: int) -> float:
    """30 s, 1 min, 2 min, … capped at 1 h, with jitter so retries do not stampede."""
    return backoff_seconds(attempt, base=FIRST_RETRY_SECONDS, cap=MAX_RETRY_SECONDS)


def webhook_delivery_run(delivery_id: int) -> str:
    """The task: one attempt (webhook_delivery_attempt), then the tenant's next due
    deliveries take the slot it frees."""
    outcome, tenant_id = _attempt(delivery_id)
    if tenant_id is not None:
        webhook_deliveries_dispatch(tenant_id=tenant_id)
    return outcome


def webhook_delivery_attempt(delivery_id: int) -> str:
    """Send one delivery once, if it is due. Returns "delivered", "retry", "failed"
    or "skipped". Claimed with a conditional update, so concurrent tasks and sweeps
    never send the same delivery twice at once."""
    return _attempt(delivery_id)[0]


def _attempt(delivery_id: int) -> tuple[str, int | None]:
    """The outcome, and the delivery's tenant when it was claimed."""
    now = timezone.now()
    deliveries = WebhookDelivery.objects.unscoped(reason="a worker sends a delivery by its id")
    claimed = (
        deliveries.filter(pk=delivery_id, status__in=OPEN)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE, attempts=F("attempts") + 1, last_attempt_at=now)
    )
    if not claimed:
        return "skipped", None
    delivery = deliveries.select_related("endpoint", "tenant").get(pk=delivery_id)
    return _send(delivery), delivery.tenant_id


def _send(delivery: WebhookDelivery) -> str:
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return _record(delivery, ok=False, error="the endpoint is switched off", permanent=True)
    body = delivery_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Lanzuan-Webhooks/1.0",
        "X-Lanzuan-Event": delivery.event,
        "X-Lanzuan-Delivery": str(delivery.event_id),
        "X-Lanzuan-Attempt": str(delivery.attempts),
        **signed_headers(endpoint.secret, body),
    }
    try:
        # checked now and connected to the checked address (no DNS rebinding)
        response = outbound.post(endpoint.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except UnsafeURL as exc:
        return _record(delivery, ok=False, error=str(exc), permanent=True)
    except requests.Timeout:
        return _record(delivery, ok=False, error=f"timed out after {TIMEOUT_SECONDS} s")
    except requests.RequestException as exc:
        return _record(delivery, ok=False, error=f"could not connect: {type(exc).__name__}")
    excerpt = response.text[:500]
    if 200 <= response.status_code < 300:
        return _record(delivery, ok=True, code=response.status_code, excerpt=excerpt)
    return _record(
        delivery, ok=False, code=response.status_code, excerpt=excerpt, error=f"HTTP {response.status_code}"
    )


def _record(
    delivery: WebhookDelivery,
    *,
    ok: bool,
    code: int | None = None,
    excerpt: str = "",
    error: str = "",
    permanent: bool = False,
) -> str:
    now = timezone.now()
    delivery.response_code = code
    delivery.response_excerpt = redact(excerpt)  # an endpoint may echo the payload's number
    delivery.lease_until = None
    if ok:
        delivery.status = Status.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = ""
        outcome = "delivered"
    else:
        delivery.last_error = redact(error)[:2000]
        next_at = now + timedelta(seconds=retry_delay(delivery.attempts))
        if permanent or (delivery.give_up_at is not None and next_at > delivery.give_up_at):
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            outcome = "failed"
            logger.warning(
                "webhook delivery %s failed for good after %s attempt(s): %s",
                delivery.pk,
                delivery.attempts,
                error,
            )
        else:
            delivery.status = Status.RETRYING
            delivery.next_attempt_at = next_at
            outcome = "retry"
    delivery.save(
        update_fields=[
            "status",
            "response_code",
            "response_excerpt",
            "last_error",
            "lease_until",
            "next_attempt_at",
            "delivered_at",
        ]
    )
    return outcome


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> None:
    """Admin "Send again": the same event (same id) once more, with a fresh 24 h of
    retries, whatever happened to it before."""
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.for_tenant(delivery.tenant_id).filter(pk=delivery.pk).update(
            status=Status.PENDING,
            next_attempt_at=now,
            give_up_at=now + RETRY_WINDOW,
            lease_until=None,
        )
        transaction.on_commit(lambda: webhook_deliveries_dispatch(tenant_id=delivery.tenant_id))


def webhook_deliveries_sweep(*, limit: int = 500) -> dict[str, int]:
    """Queue what is due and was not queued recently (retries whose time has come,
    deliveries the broker lost, a backlog waiting for slots): one round over the
    tenants, the one waiting longest first, each up to its free slots."""
    now = timezone.now()
    waiting = (
        WebhookDelivery.objects.unscoped(reason="the sweep sends every tenant's due deliveries")
        .filter(status__in=OPEN)
        .filter(_due(now))
        .values("tenant_id")
        .annotate(oldest=Min("next_attempt_at"))
        .order_by("oldest", "tenant_id")
    )
    dispatched = 0
    for row in waiting[:limit]:
        if dispatched >= limit:
            break
        dispatched += webhook_deliveries_dispatch(tenant_id=row["tenant_id"], limit=limit - dispatched)
    return {"webhook_deliveries_dispatched": dispatched}
