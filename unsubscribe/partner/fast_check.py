"""The lean paths of `/api/v1/suppressions/check` (issues 13 and 14): senders ask GET before
every message, hundreds of times a second, so the common call does one indexed query and nothing
else that leaves the process; POST checks 10,000 numbers, where DRF's per-request work (parsing
the body twice over, content negotiation) costs as much as the look-up.

It answers only the plain successful call: a known, usable key with budget left, `phone`
(and optionally a known `service`) or a body {"phones": [...]} of plain items (and optionally
`service`), JSON accepted. Anything else (no key, a bad one, the
limit reached, other parameters, an unknown service) goes through the full DRF view, which
answers exactly as before (401, 429, 400 as problem documents). The key comes from the
process's short-lived cache (tenants.authentication.verified_key), the rate limit from a
local lease (throttling.take), and the answer from the same selector and JSON as the full
view, so the two paths cannot answer differently.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from lanzuan import replica
from tenants import db_scope
from tenants.authentication import KEY_PREFIX, verified_key
from tenants.models import TenantAPIKey

from .bulk_json import check_answer_json
from .parsers import refuse_constant
from .selectors import MAX_CHECK_NUMBERS, service_exists, suppression_check_batch_plain, suppression_check_one
from .serializers import service_code_valid
from .throttling import ApiKeyRateThrottle, BulkApiKeyRateThrottle, configured_rate, parse_rate, take

_PLAIN_PARAMS = frozenset({"phone", "service"})
_PLAIN_BODY = frozenset({"phones", "service"})
_PLAIN_ITEMS = frozenset({str, int, float, bool, type(None)})  # nothing nested: no depth to check
_JSON_ACCEPTED = ("", "*/*", "application/json", "application/*")


def _accepts_json(accept: str) -> bool:
    return all(part.split(";")[0].strip() in _JSON_ACCEPTED for part in accept.split(","))


def _usable_key(request: HttpRequest) -> TenantAPIKey | None:
    scheme, _sep, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme != KEY_PREFIX or not key.strip():
        return None
    try:
        api_key = verified_key(key.strip())
    except TenantAPIKey.DoesNotExist:
        return None
    if api_key.has_expired or not api_key.tenant.is_active:
        return None
    return api_key


def fast_check(request: HttpRequest, render: Any) -> HttpResponse | None:
    """The answer to a plain check, or None: let the full view answer. `render` turns a
    status and its extras into the JSON object (the view's own function)."""
    params = request.GET
    phone = params.get("phone", "")
    service = params.get("service") or None
    if (
        not phone
        or not _PLAIN_PARAMS.issuperset(params)
        or any(len(params.getlist(name)) > 1 for name in params)
        or not _accepts_json(request.META.get("HTTP_ACCEPT", ""))
    ):
        return None
    api_key = _usable_key(request)
    if api_key is None:
        return None
    tenant = api_key.tenant
    with db_scope.tenants_scope([tenant.pk]):
        if not _may_answer(api_key, service, ApiKeyRateThrottle.scope):
            return None
        # From the replica when one is configured and has replayed every commit (lanzuan/replica.py).
        status, extras = replica.consistent_read(
            lambda: suppression_check_one(tenant=tenant, phone=phone, service_code=service)
        )
    body = json.dumps(render(status, extras), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _json_response(body.encode())


def fast_bulk_check(request: HttpRequest) -> HttpResponse | None:
    """The answer to a plain bulk check, or None: let the full view answer (a problem in the
    body, an item with its own consent time, `include`, `consented_at`, more than
    MAX_CHECK_NUMBERS numbers, the limit reached, a tenant with reassignments on record)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    length = request.META.get("CONTENT_LENGTH") or "0"
    if (
        request.content_type != "application/json"
        or not _accepts_json(request.META.get("HTTP_ACCEPT", ""))
        or request.GET
        or not length.isdigit()
        or (limit is not None and int(length) > limit)  # the parser's 413
    ):
        return None
    api_key = _usable_key(request)
    if api_key is None:
        return None
    try:  # as the parser reads it (UTF-8, no NaN); the request keeps the body for the full view
        body = json.loads(request.body.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or not _PLAIN_BODY.issuperset(body):
        return None
    numbers, service = body.get("phones"), body.get("service")
    if service == "":  # as the full view: no service
        service = None
    if (
        not isinstance(numbers, list)
        or len(numbers) > MAX_CHECK_NUMBERS
        or not _PLAIN_ITEMS.issuperset(set(map(type, numbers)))
        or (service is not None and not isinstance(service, str))  # the full view answers 400
    ):
        return None
    tenant = api_key.tenant
    with db_scope.tenants_scope([tenant.pk]):
        if not _may_answer(api_key, service, BulkApiKeyRateThrottle.scope):
            return None
        # None for a tenant with reassignments on record: the full view answers (and takes a
        # second call of the budget, the first time a process meets that tenant in a minute).
        answer = suppression_check_batch_plain(tenant=tenant, numbers=numbers, service_code=service)
    return None if answer is None else _json_response(check_answer_json(service=service, answer=answer))


def _may_answer(api_key: TenantAPIKey, service: str | None, scope: str) -> bool:
    """Whether `service` is none or one of the tenant's, and a call of the key's budget in
    `scope` was spent; if not, the full view answers (400 or 429: it takes again, and is
    refused again). Inside the tenant's scope."""
    if service is not None and not (
        service_code_valid(service) and service_exists(tenant=api_key.tenant, code=service)
    ):
        return False
    limit, period = parse_rate(configured_rate(scope))
    return take(f"throttle:{scope}:{api_key.pk}", limit=limit, period=period) is None


def _json_response(body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type="application/json")
    # What DRF adds to the same answer.
    response["Vary"] = "Accept"
    response["Allow"] = "GET, POST, HEAD, OPTIONS"
    return response
