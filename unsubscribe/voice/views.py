"""Voice webhooks: /hooks/voice/<tenant-slug>/twilio/ and /hooks/voice/<tenant-slug>/generic/.

Thin on purpose: find the tenant and its credential, verify the signature the way the
SMS webhooks do (Twilio's RequestValidator over the public URL; lanzuan.signing for the
generic protocol), read the step, hand it to `services.voice_call_step`, and answer in
the platform's shape: TwiML, or the generic JSON below.

Generic protocol (for Aliyun, Tencent and on-premise call centres), one POST per step:

    request  {"call_id": "…", "from": "+8613800138000", "to": "4008001234",
              "turn": null | <the turn of our last answer>, "digits": null | "1"}
    answer   {"call_id": "…", "turn": 1, "prompts": [{"text": "…", "language": "zh-CN"}, …],
              "expect": {"digits": ["1", "2", "9", "8"], "max_digits": 1, "timeout_seconds": 6}
                        | null, "hangup": false, "outcome": "in_progress", "reference": null}

Play the prompts in order, collect one key (none on timeout: send "digits": null with the
turn) and post it with the turn we sent; "hangup": true ends the call. "from" is read on
the first step (turn null); resending a step returns the same answer.

Errors are JSON {"error": "<code>", "message": "<reason>"}: 404 unknown tenant, 403 not
configured or a bad signature, 401 generic request unsigned, 400 malformed, 405 not a
POST. /hooks/voice/<tenant-slug>/twilio/status/ takes Twilio's StatusCallback (signed the
same way): a call that is over loses its raw number at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from lanzuan import webhooks
from tenants.models import Tenant

from . import selectors, services, twiml
from .models import VoiceCredential, VoiceProvider


def _json_error(status: int, code: str, reason: str) -> JsonResponse:
    return JsonResponse(
        {"error": code, "message": reason}, status=status, json_dumps_params={"ensure_ascii": False}
    )


def _post_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Like require_POST, but the refusal is JSON like every other error here."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            response = _json_error(405, "method_not_allowed", _("Only POST is accepted here."))
            response["Allow"] = "POST"
            return response
        return view(request, *args, **kwargs)

    return wrapped


def _configured(tenant_slug: str, provider: str) -> tuple[Tenant, VoiceCredential] | HttpResponse:
    """The tenant and its credential, or the refusal to answer with."""
    tenant = Tenant.objects.filter(slug=tenant_slug, is_active=True).first()
    if tenant is None:
        return _json_error(404, "unknown_tenant", _("No such tenant."))
    credential = selectors.voice_credential(tenant=tenant, provider=provider)
    if credential is None or not credential.enabled or not credential.secret:
        return _json_error(
            403,
            "not_configured",
            _("The voice menu through %(provider)s is not configured for this tenant.")
            % {"provider": provider},
        )
    return tenant, credential


def _text(value: Any, name: str, *, required: bool = True, limit: int = 100) -> str:
    if value is None or value == "":
        if required:
            raise webhooks.Malformed(_("“%(name)s” is required.") % {"name": name})
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise webhooks.Malformed(_("“%(name)s” must be a string.") % {"name": name})
    text = str(value).strip()
    if len(text) > limit:
        raise webhooks.Malformed(_("“%(name)s” is too long.") % {"name": name})
    return text


def _turn(value: Any) -> int | None:
    if value is None or value == "":
        return None
    # JSON gives floats too: 1e400 is inf (int() overflows), 0.9 must not become 0.
    if isinstance(value, bool) or (
        isinstance(value, float) and not (math.isfinite(value) and value.is_integer())
    ):
        raise webhooks.Malformed(_("“turn” must be a whole number."))
    try:
        turn = int(value)
    except (TypeError, ValueError, OverflowError):
        raise webhooks.Malformed(_("“turn” must be a whole number.")) from None
    if turn < 0:
        raise webhooks.Malformed(_("“turn” must be a whole number."))
    return turn


@csrf_exempt
@_post_only
def twilio_hook(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    found = _configured(tenant_slug, VoiceProvider.TWILIO)
    if isinstance(found, HttpResponse):
        return found
    tenant, credential = found
    if not webhooks.twilio_signature_ok(request, credential.secret):
        return _json_error(403, "bad_signature", _("Missing or invalid X-Twilio-Signature."))
    try:
        call_id = _text(request.POST.get("CallSid"), "CallSid")
        caller = _text(request.POST.get("From"), "From", required=False, limit=64)
        called = _text(request.POST.get("To"), "To", required=False, limit=64)
        digits = _text(request.POST.get("Digits"), "Digits", required=False, limit=20)
        turn = _turn(request.GET.get("turn"))
    except webhooks.Malformed as exc:
        return _json_error(400, "malformed", str(exc))
    prompt = services.voice_call_step(
        tenant=tenant,
        provider=VoiceProvider.TWILIO,
        call_id=call_id,
        caller=caller,
        called=called,
        digits=digits,
        turn=turn,
    )
    body = twiml.render(prompt, tenant_slug=tenant.slug, credential=credential)
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


@csrf_exempt
@_post_only
def twilio_status_hook(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """Twilio's StatusCallback: CallStatus completed / no-answer / failed … ends the call."""
    found = _configured(tenant_slug, VoiceProvider.TWILIO)
    if isinstance(found, HttpResponse):
        return found
    tenant, credential = found
    if not webhooks.twilio_signature_ok(request, credential.secret):
        return _json_error(403, "bad_signature", _("Missing or invalid X-Twilio-Signature."))
    try:
        call_id = _text(request.POST.get("CallSid"), "CallSid")
        status = _text(request.POST.get("CallStatus"), "CallStatus", required=False, limit=20)
    except webhooks.Malformed as exc:
        return _json_error(400, "malformed", str(exc))
    services.voice_call_status(tenant=tenant, provider=VoiceProvider.TWILIO, call_id=call_id, status=status)
    return HttpResponse(status=204)


@csrf_exempt
@_post_only
def generic_hook(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    found = _configured(tenant_slug, VoiceProvider.GENERIC)
    if isinstance(found, HttpResponse):
        return found
    tenant, credential = found
    try:
        webhooks.verify_generic(request, credential.secret)
    except webhooks.SignatureRefused as exc:
        return _json_error(exc.status, "unsigned" if exc.status == 401 else "bad_signature", exc.reason)
    try:
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise webhooks.Malformed(_("The body is not valid UTF-8 JSON.")) from None
        if not isinstance(data, dict):
            raise webhooks.Malformed(_("Expected a JSON object."))
        call_id = _text(data.get("call_id"), "call_id")
        turn = _turn(data.get("turn"))
        caller = _text(data.get("from"), "from", required=turn is None, limit=64)
        called = _text(data.get("to"), "to", required=False, limit=64)
        digits = _text(data.get("digits"), "digits", required=False, limit=20)
    except webhooks.Malformed as exc:
        return _json_error(400, "malformed", str(exc))
    prompt = services.voice_call_step(
        tenant=tenant,
        provider=VoiceProvider.GENERIC,
        call_id=call_id,
        caller=caller,
        called=called,
        digits=digits,
        turn=turn,
    )
    expect = (
        None
        if prompt.hangup
        else {
            "digits": list(prompt.digits),
            "max_digits": prompt.max_digits,
            "timeout_seconds": prompt.timeout_seconds,
        }
    )
    return JsonResponse(
        {
            "call_id": call_id,
            "turn": prompt.turn,
            "prompts": [{"text": say.text, "language": say.language} for say in prompt.says],
            "expect": expect,
            "hangup": prompt.hangup,
            "outcome": prompt.outcome,
            "reference": prompt.reference or None,
        },
        json_dumps_params={"ensure_ascii": False},
    )
