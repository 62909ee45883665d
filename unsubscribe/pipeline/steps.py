"""What each pipeline step does: at one of Lanzuan's own data sources, at a provider's
target, or the confirmation. Raise TransientStepError to retry, PermanentStepError to
stop and ask for attention; return a Receipt (never with a raw number in it)."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from datetime import timedelta

import requests
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lanzuan import outbound, phones
from lanzuan.outbound import UnsafeURL
from lanzuan.phones import redact
from lanzuan.signing import signed_headers
from notifications.catalogue import language_for
from notifications.defaults import scope_words
from notifications.gateways import (
    NO_GATEWAY_PREFIX,
    GatewayNotConfigured,
    PermanentGatewayError,
    TransientGatewayError,
)
from notifications.models import Message
from notifications.services import (
    MessageInFlight,
    MessageNotRetryable,
    claim_look_again_at,
    message_create,
    message_deliver,
    message_dispatch,
    message_enqueue,
    message_retry,
    message_retry_or_fail,
)
from unsubscribe.errors import PermanentStepError, StepWaiting, TransientStepError
from unsubscribe.links import status_url
from unsubscribe.models import SCOPE_ALL, Step, Subscription, Suppression, Target, UnsubscribeRequest
from unsubscribe.requests.locks import number_lock
from unsubscribe.requests.selectors import same_scope_requests

from . import datasources
from .datasources import Receipt


def run(step: Step) -> Receipt:
    request = step.request
    if step.kind == Step.Kind.CONFIRM:
        return _confirm(step, request)
    if step.source:
        return _builtin(step, request)
    target = step.target
    if target is None:
        raise PermanentStepError("the target of this step was removed")
    if not request.phone:
        raise PermanentStepError("the number was already erased; nothing to send to the target")
    return _http(step, target, request)


def _builtin(step: Step, request: UnsubscribeRequest) -> Receipt:
    """One of Lanzuan's own sources: works by the number's hash, so it needs no raw number."""
    try:
        source = datasources.get_source(step.source)
    except KeyError:
        raise PermanentStepError(f"unknown data source {step.source!r}") from None
    func = source.terminate if step.kind == Step.Kind.TERMINATE else source.erase
    if func is None:
        raise PermanentStepError(f"{source.key} cannot {step.kind}")
    with transaction.atomic():
        return func(request)


def _without_number(text: str, request: UnsubscribeRequest) -> str:
    """A provider's answer may echo the number: receipts keep only its masked form,
    and any other number-like run of digits (another form, another number) is hidden."""
    if request.phone:
        digits = request.phone.lstrip("+")
        national = digits[2:] if digits.startswith("86") else digits[-10:]
        for form in sorted({request.phone, digits, national}, key=len, reverse=True):
            text = re.sub(re.escape(form), request.phone_masked, text)
    return redact(text)


# What a target must answer (README, "Outbound calls"): a JSON object whose `status`
# says what it did and whose `reference` is its own record of it.
DONE_STATUSES = frozenset({"done", "ok", "ended", "erased"})


def _accepted(status: int, content: bytes, excerpt: str) -> Receipt:
    """A 2xx is a success only when its body keeps the contract. A body that breaks it
    is a permanent failure: the same target gives the same answer to the same call, and
    storing garbage as a receipt would claim an effect nobody vouched for. (Retrying
    happens only for the transient answers: timeouts, 408/425/429, 5xx.)"""
    try:
        payload = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise PermanentStepError(
            f"HTTP {status} but the answer is not JSON (a target must answer a JSON object with"
            f" status and reference): {excerpt[:200]}"
        ) from None
    if not isinstance(payload, dict):
        raise PermanentStepError(f"HTTP {status} but the answer is not a JSON object: {excerpt[:200]}")
    answered = payload.get("status")
    if not isinstance(answered, str) or answered.lower() not in DONE_STATUSES:
        raise PermanentStepError(
            f"HTTP {status} but status is {answered!r}, not one of {', '.join(sorted(DONE_STATUSES))}:"
            f" {excerpt[:200]}"
        )
    reference = payload.get("reference")
    if not isinstance(reference, str | int) or isinstance(reference, bool) or not str(reference).strip():
        raise PermanentStepError(f"HTTP {status} but the answer has no reference of its own: {excerpt[:200]}")
    return Receipt(note=f"HTTP {status}: {excerpt}")


def _http(step: Step, target: Target, request: UnsubscribeRequest) -> Receipt:
    """POST a signed JSON call. The step id is the idempotency key, so a call
    repeated after a worker crash has its effect once at a careful receiver."""
    body = json.dumps(
        {
            "action": step.kind,  # "terminate" or "erase"
            "reference": request.reference,
            "phone": request.phone,
            "phone_hash": request.phone_hash,
            "scope": "all" if request.scope_all else [s.code for s in request.services.all()],
            # A subscription the person renewed after this moment is newer than the opt-out: keep it.
            "received_at": request.received_at.isoformat(),
            "erasure_mode": request.tenant.erasure_mode,
            "tenant": request.tenant.slug,
            "sent_at": timezone.now().isoformat(),
        },
        ensure_ascii=False,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"lanzuan-step-{step.pk}",
        "User-Agent": "Lanzuan/1.0",
        **signed_headers(target.signing_secret, body),
    }
    try:
        # checked now and connected to the checked address (no DNS rebinding)
        response = outbound.post(target.url, data=body, headers=headers, timeout=target.timeout_seconds)
    except UnsafeURL as exc:
        raise PermanentStepError(str(exc)) from None
    except requests.Timeout:
        raise TransientStepError(f"timed out after {target.timeout_seconds} s") from None
    except requests.ConnectionError as exc:
        raise TransientStepError(f"could not connect: {type(exc).__name__}") from None
    excerpt = _without_number(response.text[:500], request)
    if 200 <= response.status_code < 300:
        return _accepted(response.status_code, response.content, excerpt)
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        raise TransientStepError(f"HTTP {response.status_code}: {excerpt}")
    raise PermanentStepError(f"HTTP {response.status_code}: {excerpt}")


def confirmation_scope(request: UnsubscribeRequest) -> dict[str, str]:
    """`{stopped}` and `{continuing}` for the confirmation, in the person's language:
    the services stopped (or all marketing), and those this number still gets (its
    active subscriptions outside the scope and not suppressed), or none."""
    words = scope_words(language_for(request.language, request.tenant.default_language))
    if request.scope_all:
        return {"stopped": words.all_marketing, "continuing": words.nothing}
    chosen = list(request.services.order_by("name"))
    suppressed = set(
        Suppression.objects.for_tenant(request.tenant_id)
        .filter(phone_hash=request.phone_hash)
        .values_list("scope", flat=True)
    )
    continuing: list[str] = []
    if SCOPE_ALL not in suppressed:
        active = (
            Subscription.objects.for_tenant(request.tenant_id)
            .filter(phone_hash=request.phone_hash, status=Subscription.Status.ACTIVE)
            .exclude(service__in=chosen)
            .exclude(service__code__in=suppressed)
            .select_related("service")
            .order_by("service__name")
        )
        continuing = list(dict.fromkeys(s.service.name for s in active))
    return {
        "stopped": words.separator.join(s.name for s in chosen),
        "continuing": words.separator.join(continuing) or words.nothing,
    }


def _confirm(step: Step, request: UnsubscribeRequest) -> Receipt:
    if not request.phone:
        raise PermanentStepError("the number was already erased; no confirmation can be sent")
    if (request.confirmation_channel or "sms") == "sms" and phones.is_fixed_line(request.phone):
        # A landline caller (the voice menu files for them) cannot take a text message.
        return Receipt(note="no SMS-capable number (a fixed line): no confirmation sent")
    with transaction.atomic():
        # One confirmation per number and scope per (tenant's) day, whatever comes in:
        # the lock makes two confirm steps of the same number take turns.
        number_lock(request.tenant_id, request.phone_hash, "confirm")
        earlier = _confirmed_today(request)
        if earlier is not None:
            return Receipt(
                note=f"no second confirmation today: message {earlier.pk} already confirmed this number and scope"
            )
        message = _create_confirmation(request, attempt=step.attempts)
    return _confirmation_outcome(message)


# How long after a message's next try the step looks at it again (the try takes a few seconds).
CONFIRMATION_LOOK_AGAIN = timedelta(seconds=5)


def _confirmation_outcome(message: Message) -> Receipt:
    """The step ends as the confirmation's message does: sent (a receipt), failed (the
    step fails with its reason) or still on its way (the step waits for it, StepWaiting).

    The message keeps its own attempts (MAX_ATTEMPTS, its backoff), its claim's lease and
    its sweep (notifications.services), so the step never gives up before the message
    does: a worker that died mid-send delays the confirmation by the lease, and the
    message is then sent once in effect (its idempotency key, or a look-up at the
    provider) instead of being failed."""
    now = timezone.now()
    due = message.next_attempt_at is None or message.next_attempt_at <= now
    if message.status == Message.Status.QUEUED and due:
        try:
            message = message_deliver(message.pk)
        except GatewayNotConfigured as exc:
            # Not the person's fault nor for good: once staff set up a gateway the next
            # attempt sends (a new message; this one stays failed, with the reason).
            raise TransientStepError(str(exc)) from None
        except MessageInFlight as exc:
            raise StepWaiting(f"message {message.pk}: {exc}", until=exc.retry_at) from None
        except TransientGatewayError as exc:
            # The message's task retries it on the message's schedule; the step looks again then.
            delay = message_retry_or_fail(message_id=message.pk, error=str(exc))
            if delay is not None:
                message_dispatch(message.pk, countdown=delay)
        except PermanentGatewayError:
            pass  # recorded on the message, read below
        message.refresh_from_db()
    if message.status in (Message.Status.SENT, Message.Status.DELIVERED):
        return Receipt(note=f"message {message.pk} {message.status} via {message.channel}")
    if message.status == Message.Status.FAILED:
        if message.error.startswith(NO_GATEWAY_PREFIX):
            raise TransientStepError(message.error)
        raise PermanentStepError(message.error or f"message {message.pk} failed")
    if message.claimed_at is not None:
        until = claim_look_again_at(message.claimed_at)
    else:
        until = max(message.next_attempt_at or now, now)
    why = message.error or "queued"
    raise StepWaiting(f"message {message.pk} is on its way ({why})", until=until + CONFIRMATION_LOOK_AGAIN)


def confirmation_requeue(request: UnsubscribeRequest) -> None:
    """Staff retry a request whose confirmation failed: its message goes back in the
    queue (the same message: the provider sees its idempotency key again), so that the
    confirm step sends it instead of reading the old failure. A failure for want of a
    gateway is left as it is: the step makes a new message for that one."""
    if not request.phone:
        return
    latest = _latest_confirmation(request)
    if latest is None or latest.status != Message.Status.FAILED or latest.error.startswith(NO_GATEWAY_PREFIX):
        return
    with suppress(MessageNotRetryable):  # not retryable: the step reads the failure again and says why
        message_retry(message=latest, to=request.phone, dispatch=False)


def _latest_confirmation(request: UnsubscribeRequest) -> Message | None:
    """The request's newest confirmation message (dedupe key `confirm:<pk>`, or `confirm:<pk>:<n>`
    for one made again after a failure for want of a gateway)."""
    key = f"confirm:{request.pk}"
    return (
        Message.objects.for_tenant(request.tenant_id)
        .filter(Q(dedupe_key=key) | Q(dedupe_key__startswith=f"{key}:"))
        .order_by("-pk")
        .first()
    )


def confirmation_recipient(message: Message) -> str:
    """Registered with notifications (message_recipient_register): the number a failed
    confirmation went to, while its request is open and still holds it ("" otherwise),
    so that staff can send it again from the admin."""
    match = re.fullmatch(r"confirm:(\d+)(?::\d+)?", message.dedupe_key or "")
    if match is None or message.event != "unsubscribe_completed":
        return ""
    request = (
        UnsubscribeRequest.objects.for_tenant(message.tenant_id)
        .filter(pk=int(match.group(1)), state__in=UnsubscribeRequest.OPEN_STATES)
        .only("phone", "phone_hash")
        .first()
    )
    if request is None or not request.phone or request.phone_hash != message.to_hash:
        return ""
    return request.phone


def _confirmed_today(request: UnsubscribeRequest) -> Message | None:
    """A confirmation (not failed) already made today for another request of this number and scope."""
    tenant = request.tenant
    day_start = tenant.local_midnight(timezone.localtime(timezone.now(), tenant.zoneinfo).date())
    others = same_scope_requests(
        request.tenant_id,
        request.phone_hash,
        scope_all=request.scope_all,
        service_ids=set(request.services.values_list("pk", flat=True)),
    )
    keys = Q()
    for other in others:
        if other.pk != request.pk:
            keys |= Q(dedupe_key=f"confirm:{other.pk}") | Q(dedupe_key__startswith=f"confirm:{other.pk}:")
    if not keys:
        return None
    return (
        Message.objects.for_tenant(request.tenant_id)
        .filter(keys, created_at__gte=day_start)
        .exclude(status=Message.Status.FAILED)
        .order_by("pk")
        .first()
    )


def _create_confirmation(request: UnsubscribeRequest, *, attempt: int) -> Message:
    """The request's confirmation message: the same one on every attempt (its dedupe
    key), except after it failed for want of a gateway, when a new one is made."""
    key = f"confirm:{request.pk}"
    latest = _latest_confirmation(request)
    if latest is not None:
        key = latest.dedupe_key or key
        if latest.status == Message.Status.FAILED and latest.error.startswith(NO_GATEWAY_PREFIX):
            key = f"confirm:{request.pk}:{attempt}"
    message = message_create(
        tenant=request.tenant,
        event="unsubscribe_completed",
        to=request.phone,
        channel=request.confirmation_channel or "sms",
        language=request.language,
        context={
            "reference": request.reference,
            "status_url": status_url(request),
            **confirmation_scope(request),
        },
        dedupe_key=key,
    )
    # The send machinery's from now on: if this step's worker dies mid-send, the
    # messages sweep sends it when the claim's lease ends (and the step waits for it).
    return message_enqueue(message=message)
