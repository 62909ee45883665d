"""What each pipeline step does at its target. Raise TransientStepError to retry,
PermanentStepError to stop and ask for attention; return a short receipt."""

from __future__ import annotations

import json

import requests
from django.db import transaction
from django.utils import timezone

from lanzuan.outbound import UnsafeURL, check_url
from lanzuan.signing import signed_headers

from . import datasources
from .errors import PermanentStepError, TransientStepError
from .links import status_url
from .models import Step, Target, UnsubscribeRequest


def run(step: Step) -> str:
    request = step.request
    if step.kind == Step.Kind.CONFIRM:
        return _confirm(step, request)
    target = step.target
    if target is None:
        raise PermanentStepError("the target of this step was removed")
    if not request.phone:
        raise PermanentStepError("the number was already erased; nothing to send to the target")
    if target.kind == Target.Kind.INTERNAL:
        return _internal(step, target, request)
    return _http(step, target, request)


def _internal(step: Step, target: Target, request: UnsubscribeRequest) -> str:
    try:
        source = datasources.get_source(target.internal_source)
    except KeyError:
        raise PermanentStepError(f"unknown internal data source {target.internal_source!r}") from None
    func = source.terminate if step.kind == Step.Kind.TERMINATE else source.erase
    if func is None:
        raise PermanentStepError(f"{source.key} cannot {step.kind}")
    with transaction.atomic():
        return func(request)


def _http(step: Step, target: Target, request: UnsubscribeRequest) -> str:
    """POST a signed JSON call. The step id is the idempotency key, so a call
    repeated after a worker crash has its effect once at a careful receiver."""
    body = json.dumps(
        {
            "action": step.kind,  # "terminate" or "erase"
            "reference": request.reference,
            "phone": request.phone,
            "phone_hash": request.phone_hash,
            "scope": "all" if request.scope_all else [s.code for s in request.services.all()],
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
        check_url(target.url, resolve_required=True)
    except UnsafeURL as exc:
        raise PermanentStepError(str(exc)) from None
    try:
        response = requests.post(
            target.url, data=body, headers=headers, timeout=target.timeout_seconds, allow_redirects=False
        )
    except requests.Timeout:
        raise TransientStepError(f"timed out after {target.timeout_seconds} s") from None
    except requests.ConnectionError as exc:
        raise TransientStepError(f"could not connect: {type(exc).__name__}") from None
    excerpt = response.text[:500]
    if 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}: {excerpt}"
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        raise TransientStepError(f"HTTP {response.status_code}: {excerpt}")
    raise PermanentStepError(f"HTTP {response.status_code}: {excerpt}")


def _confirm(step: Step, request: UnsubscribeRequest) -> str:
    from notifications.gateways import PermanentGatewayError, TransientGatewayError
    from notifications.services import message_create, message_deliver

    if not request.phone:
        raise PermanentStepError("the number was already erased; no confirmation can be sent")
    message = message_create(
        tenant=request.tenant,
        event="unsubscribe_completed",
        to=request.phone,
        channel=request.confirmation_channel or "sms",
        language=request.language,
        context={"reference": request.reference, "status_url": status_url(request)},
        dedupe_key=f"confirm:{request.pk}",
    )
    try:
        message = message_deliver(message.pk)
    except TransientGatewayError as exc:
        raise TransientStepError(str(exc)) from None
    except PermanentGatewayError as exc:
        raise PermanentStepError(str(exc)) from None
    return f"message {message.pk} {message.status} via {message.channel}"
