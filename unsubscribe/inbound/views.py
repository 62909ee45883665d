"""Inbound SMS webhooks (twilio, aliyun, generic):

- /hooks/sms/<tenant-slug>/<provider>/ — one tenant's own gateway;
- /hooks/sms/platform/<account>/<provider>/ — a shared gateway account serving many
  tenants: each reply is routed by the number, extension code or sign name it was sent
  to (one path segment more, so it can never be read as a tenant's URL).

Thin on purpose: find the credential, verify, parse, hand each message to the services
(`tenant_reply_receive` / `platform_reply_receive`, which store it with everything it
causes in one transaction), then answer in the provider's own shape:

| outcome                       | twilio                | aliyun                         | generic                       |
| ----------------------------- | --------------------- | ------------------------------ | ----------------------------- |
| accepted (or a retry)         | 200 TwiML <Response/> | 200 {"code": 0, "msg": "成功"} | 200 {"status": "accepted", …} |
| unknown tenant / account      | 404                   | 404 {"code": 404, "msg": …}    | 404                           |
| provider not configured / off | 403                   | 403 {"code": 403, "msg": …}    | 403                           |
| no token / signature headers  | 403 (Twilio's rule)   | 401 {"code": 401, "msg": …}    | 401                           |
| wrong token/signature, stale  | 403                   | 403 {"code": 403, "msg": …}    | 403                           |
| malformed payload             | 400                   | 400 {"code": 400, "msg": …} *  | 400                           |

Twilio and generic errors (and an unknown provider, 404) are JSON:
{"error": "<code>", "message": "<reason>"}.
* Aliyun batches: the readable messages are stored even when a neighbour is broken;
  the 400 makes Aliyun push the batch again, and the stored ones are then recognised.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from lanzuan import webhooks

from . import providers, selectors, services
from .models import Provider

# What each handler hands a parsed message to: the tenant's or the platform's routing.
Receive = Callable[[providers.Incoming], services.Received]

ALIYUN_OK = "成功"


def _json_error(status: int, code: str, reason: str) -> JsonResponse:
    return JsonResponse(
        {"error": code, "message": reason}, status=status, json_dumps_params={"ensure_ascii": False}
    )


def _aliyun_answer(status: int, reason: str) -> JsonResponse:
    # Aliyun only checks that "code" is a number and that the HTTP status is 200; any
    # other status makes it push the batch again later.
    return JsonResponse(
        {"code": 0 if status == 200 else status, "msg": reason},
        status=status,
        json_dumps_params={"ensure_ascii": False},
    )


def _twilio(request: HttpRequest, secret: str, receive: Receive) -> HttpResponse:
    if not webhooks.twilio_signature_ok(request, secret):
        return _json_error(403, "bad_signature", _("Missing or invalid X-Twilio-Signature."))
    try:
        incoming = providers.parse_twilio(request.POST)
    except webhooks.Malformed as exc:
        return _json_error(400, "malformed", str(exc))
    receive(incoming)
    # The reply itself goes out through notifications, so it is recorded as a Message.
    return HttpResponse(str(MessagingResponse()), content_type="text/xml")


def _aliyun(request: HttpRequest, secret: str, receive: Receive) -> HttpResponse:
    token = providers.aliyun_token(request)
    if not token:
        return _aliyun_answer(
            401, _("A token is required (?token= or the %(header)s header).") % {"header": "X-Lanzuan-Token"}
        )
    if not providers.aliyun_token_ok(token, secret):
        return _aliyun_answer(403, _("The token is not valid."))
    try:
        messages, problems = providers.parse_aliyun(request.body)
    except webhooks.Malformed as exc:
        return _aliyun_answer(400, str(exc))
    for incoming in messages:
        receive(incoming)
    if problems:
        return _aliyun_answer(
            400, _("Some messages could not be read: %(problems)s") % {"problems": "; ".join(problems)[:1000]}
        )
    return _aliyun_answer(200, ALIYUN_OK)


def _generic(request: HttpRequest, secret: str, receive: Receive) -> HttpResponse:
    try:
        webhooks.verify_generic(request, secret)
    except webhooks.SignatureRefused as exc:
        return _json_error(exc.status, "unsigned" if exc.status == 401 else "bad_signature", exc.reason)
    try:
        incoming = providers.parse_generic(request.body)
    except webhooks.Malformed as exc:
        return _json_error(400, "malformed", str(exc))
    received = receive(incoming)
    return JsonResponse({"status": "accepted", "message_id": received.message_id, "action": received.action})


_HANDLERS: dict[str, Callable[[HttpRequest, str, Receive], HttpResponse]] = {
    Provider.TWILIO: _twilio,
    Provider.ALIYUN: _aliyun,
    Provider.GENERIC: _generic,
}


def _refuser(provider: str) -> Callable[[int, str, str], HttpResponse]:
    def refuse(status: int, code: str, reason: str) -> HttpResponse:
        return (
            _aliyun_answer(status, reason)
            if provider == Provider.ALIYUN
            else _json_error(status, code, reason)
        )

    return refuse


@csrf_exempt
@require_POST
def sms_hook(request: HttpRequest, tenant_slug: str, provider: str) -> HttpResponse:
    handler = _HANDLERS.get(provider)
    if handler is None:
        return _json_error(404, "unknown_provider", _("Unknown provider: use twilio, aliyun or generic."))
    refuse = _refuser(provider)
    tenant = selectors.active_tenant(tenant_slug)
    if tenant is None:
        return refuse(404, "unknown_tenant", _("No such tenant."))
    credential = selectors.inbound_credential(tenant=tenant, provider=provider)
    if credential is None or not credential.enabled or not credential.secret:
        return refuse(
            403,
            "not_configured",
            _("Replies through %(provider)s are not configured for this tenant.") % {"provider": provider},
        )

    def receive(incoming: providers.Incoming) -> services.Received:
        return services.tenant_reply_receive(
            tenant=tenant,
            provider=provider,
            message_id=incoming.message_id,
            from_number=incoming.from_number,
            to=incoming.to,
            body=incoming.body,
            received_at=incoming.received_at,
            sign_name=incoming.sign_name,
        )

    return handler(request, credential.secret, receive)


@csrf_exempt
@require_POST
def platform_sms_hook(request: HttpRequest, account: str, provider: str) -> HttpResponse:
    """A shared gateway account: the tenant of each reply comes from where it was sent."""
    handler = _HANDLERS.get(provider)
    if handler is None:
        return _json_error(404, "unknown_provider", _("Unknown provider: use twilio, aliyun or generic."))
    refuse = _refuser(provider)
    credential = selectors.inbound_credential_for_platform(account=account, provider=provider)
    if credential is None:
        return refuse(404, "unknown_account", _("No such shared gateway account for this provider."))
    if not credential.enabled or not credential.secret:
        return refuse(403, "not_configured", _("This shared gateway account is switched off."))

    def receive(incoming: providers.Incoming) -> services.Received:
        return services.platform_reply_receive(
            account=credential,
            message_id=incoming.message_id,
            from_number=incoming.from_number,
            to=incoming.to,
            body=incoming.body,
            received_at=incoming.received_at,
            sign_name=incoming.sign_name,
        )

    return handler(request, credential.secret, receive)
