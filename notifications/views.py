"""Delivery reports from providers."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from . import selectors, services
from .models import GatewayConfig, Message


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    """Twilio's StatusCallback (form POST: MessageSid, MessageStatus, ErrorCode).

    Signed by Twilio with the tenant's auth token over the public URL it called
    (PUBLIC_BASE_URL, since we may sit behind a proxy); unsigned or foreign
    reports are refused before anything changes.
    """
    sid = request.POST.get("MessageSid", "")
    status = request.POST.get("MessageStatus", "")
    if not sid or not status:
        return HttpResponse(
            "MessageSid and MessageStatus are required", status=400, content_type="text/plain"
        )
    message = (
        # The report names only the provider's message id; the tenant's token then checks its signature.
        Message.objects.unscoped(reason="a delivery report is matched by the provider's message id")
        .filter(gateway=GatewayConfig.Kind.TWILIO, provider_message_id=sid)
        .select_related("tenant")
        .first()
    )
    if message is None:
        return HttpResponse("unknown message", status=404, content_type="text/plain")
    config = selectors.gateway_config_get(tenant=message.tenant_id, channel=message.channel)
    if config is None or config.kind != GatewayConfig.Kind.TWILIO or not config.secret:
        return HttpResponse("no Twilio gateway for this message", status=403, content_type="text/plain")
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    signature = request.headers.get("X-Twilio-Signature", "")
    params = {key: request.POST.get(key, "") for key in request.POST}
    if not RequestValidator(config.secret).validate(url, params, signature):
        return HttpResponse("bad signature", status=403, content_type="text/plain")
    if request.POST.get("AccountSid", config.account_id) != config.account_id:
        return HttpResponse("wrong account", status=403, content_type="text/plain")
    services.message_status_report(
        message=message, provider_status=status, error_code=request.POST.get("ErrorCode", "")
    )
    return HttpResponse(status=204)
