"""Partner API v1 endpoints. Thin: parse and validate input, call a service or a
selector, shape the output. Scoping comes from TenantScopedAPIView (the API key's
tenant), errors are problem details (problems.py), limits per key (throttling.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.http import FileResponse, HttpResponse
from django.utils.dateparse import parse_datetime
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from lanzuan import replica
from tenants.api import TenantScopedAPIView
from tenants.models import Tenant, TenantAPIKey
from unsubscribe.audit.services import audit_actor, audit_actor_set
from unsubscribe.channels import ways_to_unsubscribe
from unsubscribe.instants import InstantError, instant_parse
from unsubscribe.models import RequestChannel, UnsubscribeRequest, VerificationMethod
from unsubscribe.proofs.services import proof_pack_export
from unsubscribe.references import clean_reference
from unsubscribe.requests import services as request_services
from unsubscribe.selectors import enabled_channels

from . import examples, scrub, upload_limits, webhooks
from .bulk_json import check_answer_json
from .errors import TooManyNumbers, UnknownService
from .fast_check import fast_bulk_check, fast_check
from .models import ScrubJob, WebhookEndpoint
from .parsers import LimitedJSONParser
from .problems import (
    PROBLEM_CONTENT_TYPE,
    Problem,
    ProblemSerializer,
    field_error,
    invalid_field,
    problem_exception_handler,
)
from .selectors import (
    MAX_CHECK_NUMBERS,
    CheckExtras,
    NumberStatus,
    check_extras,
    requests_filtered,
    service_exists,
    suppression_check_batch_plain,
    suppression_check_many,
    suppression_check_one,
)
from .serializers import (
    DATE_FILTER_PATTERN,
    DATE_FILTER_SCHEMA,
    SERVICE_CODE_SCHEMA,
    SUBSCRIPTION_ITEMS_SCHEMA,
    ChannelSerializer,
    CheckBodyDoc,
    CheckResultDoc,
    ImportResultDoc,
    NumberStatusDoc,
    ScrubJobCreateSerializer,
    ScrubJobSerializer,
    UnsubscribeRequestCreateSerializer,
    UnsubscribeRequestPageSerializer,
    UnsubscribeRequestSerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    service_code_valid,
)
from .subscriptions_import import MAX_IMPORT_ITEMS, subscriptions_import
from .throttling import ApiKeyRateThrottle, BulkApiKeyRateThrottle

IDEMPOTENCY_LOCK_SECONDS = 30
MAX_IDEMPOTENCY_KEY = 200


def problems(*statuses: int) -> dict[Any, OpenApiResponse]:
    """The error answers of an operation, as application/problem+json with an example each."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer,
            description=examples.PROBLEM_DESCRIPTIONS[status],
            examples=[examples.problem_example(status)],
        )
        for status in statuses
    }


RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait before this API key may call again.",
)


def link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link: where an answer leads, and which of its values the next call takes."""
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def documented(*, links: dict[int, dict[str, Any]] | None = None, **kwargs: Any) -> Callable[[Any], Any]:
    """extend_schema(), plus what every partner operation shares: the 429's Retry-After; and
    `links` by status (drf-spectacular has no place for them; PartnerAutoSchema adds them)."""
    decorate = extend_schema(**{**kwargs, "parameters": [*kwargs.get("parameters", []), RETRY_AFTER]})

    def wrapper(method: Any) -> Any:
        method.openapi_links = {str(status): named for status, named in (links or {}).items()}
        return decorate(method)

    return wrapper


class PartnerAutoSchema(AutoSchema):
    """drf-spectacular's schema of an operation, with the OpenAPI links its method declares
    through documented(links=...): a client (and schemathesis' stateful phase) can follow
    POST /unsubscribe-requests to GET /unsubscribe-requests/{reference}, and so on."""

    def _get_response_for_code(
        self, serializer: Any, status_code: str, media_types: Any = None, direction: str = "response"
    ) -> dict[str, Any]:
        response: dict[str, Any] = super()._get_response_for_code(  # type: ignore[no-untyped-call]
            serializer, status_code, media_types, direction
        )
        handler = getattr(self.view, self.method.lower(), None)  # the view's get(), post()…
        named = getattr(handler, "openapi_links", {}).get(str(status_code))
        if named:
            response["links"] = named
        return response

    def _get_request_for_media_type(self, serializer: Any, direction: str = "request") -> Any:
        schema, required = super()._get_request_for_media_type(serializer, direction)  # type: ignore[no-untyped-call]
        # A body given as a raw schema (the import's list): drf-spectacular cannot tell whether it
        # is required, and every partner operation's body is.
        return schema, required or isinstance(serializer, dict)


class PartnerAPIView(TenantScopedAPIView):
    """Every partner endpoint: problem details even before the global
    EXCEPTION_HANDLER setting is in place, and the per-key rate limit."""

    throttle_classes = [ApiKeyRateThrottle]
    schema = PartnerAutoSchema()

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return problem_exception_handler

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        with audit_actor(""):  # whatever this call records names its key (set in initial), then no one
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if isinstance(request.auth, TenantAPIKey):
            audit_actor_set(f"api_key:{request.auth.prefix}")


_DATE_FILTER_RE = re.compile(DATE_FILTER_PATTERN)

DATE_FILTER_NOTE = (
    "Years 1901–8998, offsets within ±14:00; otherwise 400. A local time a daylight-saving change "
    "skips counts as that far after the change, a repeated one as the first of the two. "
    "A bare date (`2025-01-31`) means midnight at the start of that day in the tenant's time zone "
    "(`time_zone` in `GET /api/v1/me`; Asia/Shanghai unless the provider set another), so "
    "`created_before=2025-02-01` includes all of 31 January there. A date and time with an offset "
    "(`2025-01-31T08:00:00+08:00`, `2025-01-31T00:00:00Z`) is taken as given; one without an offset "
    "is wall time in the tenant's zone. Write `+` as `%2B` in a query string."
)


def _parse_time(field: str, raw: str | None, *, tenant: Tenant) -> datetime | None:
    """A list filter's instant, by the rules of unsubscribe.instants (shared with the
    imports): a full ISO 8601 time with an offset is taken as given; a bare date is
    midnight and a time without an offset is wall time, both in the tenant's time zone
    (the server's zone, or UTC, is no one's day). Out of range, malformed, or not matching the
    schema's DATE_FILTER_PATTERN → 400."""
    if raw is None:
        return None
    try:
        value = instant_parse(raw, tz=tenant.zoneinfo)
    except InstantError as exc:
        raise invalid_field(field, exc.message) from None
    # What the parser lets through beyond the schema's pattern: an empty value, spaces around
    # it, other digits than 0-9, and the edge years whose instants may fall outside its range.
    if value is None or not _DATE_FILTER_RE.fullmatch(raw):
        edge_year = raw[:4] in ("1900", "8999")
        raise invalid_field(
            field,
            _("The date must be between the years 1901 and 8998.")
            if edge_year
            else _("Use an ISO 8601 date or date and time, e.g. 2025-01-31T08:00:00+08:00."),
        )
    return value


def consented_at_parse(raw: Any, *, zone: Any) -> datetime | None:
    """A check body's `consented_at`: the list filters' grammar (DATE_FILTER_PATTERN); ValueError
    with a message to show."""
    if not isinstance(raw, str) or not _DATE_FILTER_RE.fullmatch(raw):
        raise ValueError(_("Use an ISO 8601 date or date and time, e.g. 2025-01-31T08:00:00+08:00."))
    try:
        return instant_parse(raw, tz=zone)
    except InstantError as exc:
        raise ValueError(exc.message) from None


# --- unsubscribe requests --------------------------------------------------------


class RequestCursorPagination(CursorPagination):
    """DRF's cursor paging, strict: a page_size outside 1–500 or not a whole number, or a cursor
    this API did not give out, is a 400 (DRF quietly uses the default size, and answers a bad
    cursor with a 404 as if the list were not there)."""

    ordering = "-received_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise invalid_field(self.page_size_query_param, _("A whole number from 1 to 500."))
        return int(raw)

    def decode_cursor(self, request: Request) -> Any:
        invalid = Problem(
            status=400,
            code="invalid_cursor",
            detail=_("Use the cursor of a `next` or `previous` link as it is."),
            errors=[field_error(self.cursor_query_param, _("Not a cursor of this list."))],
        )
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise invalid from None
        # DRF checks the cursor's form, not its position (a received_at): a forged one is a 400
        # here rather than a database error about a date.
        if cursor is not None and cursor.position is not None and not _is_datetime(str(cursor.position)):
            raise invalid
        return cursor


def _is_datetime(text: str) -> bool:
    try:
        return parse_datetime(text) is not None
    except ValueError:  # well-formed, impossible (2025-02-30)
        return False


def idempotency_lock_key(tenant_id: int, key: str) -> str:
    """Cache key of the short lock held while a request with this key is created."""
    return f"idem:{tenant_id}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


READ_REQUEST = link(
    "unsubscribe_requests_retrieve",
    "The request: its state and steps.",
    reference="$response.body#/reference",
)


class UnsubscribeRequestListView(PartnerAPIView):
    parser_classes = [LimitedJSONParser]

    @documented(
        operation_id="unsubscribe_requests_create",
        summary="File an unsubscribe request on a person's behalf",
        description=examples.CREATE_REQUEST_DESCRIPTION,
        request=UnsubscribeRequestCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
                OpenApiParameter.HEADER,
                required=False,
                description="Any unique string up to 200 characters (a UUID is best). Repeating it with the "
                "same body returns the original request (200); with another body, 422; while the first "
                "call is still running, 409. Keys never expire: they are kept on the request.",
            )
        ],
        responses={
            201: OpenApiResponse(
                UnsubscribeRequestSerializer, description="Filed; the number is suppressed."
            ),
            200: OpenApiResponse(UnsubscribeRequestSerializer, description="A repeat of an earlier call."),
            **problems(400, 401, 403, 409, 413, 415, 422, 429),
        },
        examples=examples.CREATE_REQUEST_EXAMPLES,
        links={status: {"TheRequest": READ_REQUEST} for status in (200, 201)},
    )
    def post(self, request: Request) -> Response:
        body = UnsubscribeRequestCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        verification = data.get("verification") or {
            "method": VerificationMethod.PARTNER_ASSERTION,
            "evidence": {},
        }
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
            raise invalid_field("Idempotency-Key", _("At most 200 characters."))
        # The evidence is the body's only: it is part of the request's fingerprint, so a
        # retry with the same Idempotency-Key through a rotated API key still matches.
        evidence = verification["evidence"]
        api_key = request.auth
        assert isinstance(api_key, TenantAPIKey)

        def file() -> request_services.FiledRequest:
            return request_services.unsubscribe_request_create(
                tenant=self.tenant,
                phone=data["phone"],
                channel=data["channel"],
                verification_method=verification["method"],
                verification_evidence=evidence,
                services=data["scope"],
                language=data.get("language"),
                idempotency_key=key,
                filed_by=f"API key {api_key.prefix} ({api_key.name})",
            )

        if key is None:
            filed = file()
        else:
            # The unique (tenant, key) constraint makes a repeat return the first
            # request; the lock turns "still running" into a clear 409 instead of
            # a wait on the row lock or a second create racing the first.
            lock = idempotency_lock_key(self.tenant.pk, key)
            if not cache.add(lock, 1, timeout=IDEMPOTENCY_LOCK_SECONDS):
                raise Problem(
                    status=409,
                    code="idempotency_in_progress",
                    detail=_("A request with this Idempotency-Key is still being processed; retry shortly."),
                    errors=[field_error("Idempotency-Key", _("In use by a call that has not finished."))],
                )
            try:
                filed = file()
            finally:
                cache.delete(lock)
        output = UnsubscribeRequestSerializer(
            self.scoped(UnsubscribeRequest)
            .prefetch_related("services", "steps", "deadlines")
            .get(pk=filed.request.pk),
            context={"request": request},
        )
        return Response(output.data, status=201 if filed.created else 200)

    @documented(
        operation_id="unsubscribe_requests_list",
        summary="List unsubscribe requests",
        description="Newest first, with cursor paging: follow `next` until it is null.",
        parameters=[
            OpenApiParameter("state", str, enum=UnsubscribeRequest.State.values),
            OpenApiParameter("channel", str, enum=RequestChannel.values),
            OpenApiParameter(
                "created_after",
                DATE_FILTER_SCHEMA,
                description="Received at or after this time (ISO 8601). " + DATE_FILTER_NOTE,
                examples=[
                    OpenApiExample("A day", value="2025-01-31"),
                    OpenApiExample("An instant", value="2025-01-31T08:00:00+08:00"),
                ],
            ),
            OpenApiParameter(
                "created_before",
                DATE_FILTER_SCHEMA,
                description="Received before this time (ISO 8601). " + DATE_FILTER_NOTE,
            ),
            OpenApiParameter(
                "cursor",
                str,
                description="From `next` or `previous`, as it is; any other value is a 400 `invalid_cursor`.",
            ),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": 500},
                description="1–500, default 50.",
            ),
        ],
        responses={200: UnsubscribeRequestPageSerializer, **problems(400, 401, 429)},
        links={
            200: {
                "TheFirstRequest": link(
                    "unsubscribe_requests_retrieve",
                    "The first request of the page.",
                    reference="$response.body#/results/0/reference",
                )
            }
        },
        examples=[examples.REQUEST_PAGE_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        # An empty value is not one of the values either: 400, as the schema's enum says.
        state = request.query_params.get("state")
        channel = request.query_params.get("channel")
        if state is not None and state not in UnsubscribeRequest.State.values:
            raise invalid_field("state", _("Unknown state: %(value)s") % {"value": state})
        if channel is not None and channel not in RequestChannel.values:
            raise invalid_field("channel", _("Unknown channel: %(value)s") % {"value": channel})
        queryset = requests_filtered(
            requests=self.scoped(UnsubscribeRequest),
            state=state,
            channel=channel,
            created_after=_parse_time(
                "created_after", request.query_params.get("created_after"), tenant=self.tenant
            ),
            created_before=_parse_time(
                "created_before", request.query_params.get("created_before"), tenant=self.tenant
            ),
        )
        paginator = RequestCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = UnsubscribeRequestSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)


class UnsubscribeRequestDetailView(PartnerAPIView):
    @documented(
        operation_id="unsubscribe_requests_retrieve",
        summary="One request: state, steps with times, receipts",
        responses={200: UnsubscribeRequestSerializer, **problems(401, 404, 429)},
        examples=[examples.REQUEST_EXAMPLE],
    )
    def get(self, request: Request, reference: str) -> Response:
        found = (
            self.scoped(UnsubscribeRequest)
            .filter(reference=clean_reference(reference))
            .prefetch_related("services", "steps", "deadlines")
            .first()
        )
        if found is None:
            raise Problem(status=404, code="not_found", detail=_("No request with this reference."))
        return Response(UnsubscribeRequestSerializer(found, context={"request": request}).data)


# --- suppression checks -------------------------------------------------------------


def _status_json(status: NumberStatus, extras: CheckExtras | None = None) -> dict[str, Any]:
    if not status.valid:
        return {"phone": status.phone, "valid": False, "error": status.error}
    answer = {
        "phone": status.phone,
        "valid": True,
        "e164": status.e164,
        "suppressed": status.suppressed,
        "since": localtime(status.since).isoformat() if status.since else None,
        "scopes": ["all" if scope == "*" else scope for scope in status.scopes],
    }
    if status.platform_do_not_market:  # present only then: every other answer keeps its shape
        answer["platform_do_not_market"] = True
    if extras is not None:
        if extras.reassigned_since is not None:
            answer["reassigned_since"] = extras.reassigned_since.isoformat()
        if extras.reassigned_since_consent is not None:
            answer["reassigned_since_consent"] = extras.reassigned_since_consent
        if extras.consent is not None:
            consent = extras.consent
            answer["consent"] = {
                "on_record": consent.on_record,
                "given_at": localtime(consent.given_at).isoformat() if consent.given_at else None,
                "revoked": consent.revoked,
                "revoked_at": localtime(consent.revoked_at).isoformat() if consent.revoked_at else None,
                "void": consent.void,
                "void_since": consent.void_since.isoformat() if consent.void_since else None,
            }
    return answer


def _include_consent(raw: Any, *, listed: bool = False) -> bool:
    """`include`: "consent" (a query parameter) or a list of "consent" (`listed`: in a body); else 400."""
    values = raw if listed and isinstance(raw, list) else [raw] if not listed else None
    if values is None or any(value != "consent" for value in values):
        raise invalid_field("include", _("The only value is consent."))
    return bool(values)


class SuppressionCheckView(PartnerAPIView):
    parser_classes = [LimitedJSONParser]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The plain calls, without DRF's machinery (fast_check.py); None: the full view answers.
        if request.method == "GET":
            answer = fast_check(request, _status_json)
            if answer is not None:
                return answer
        elif request.method == "POST":
            answer = fast_bulk_check(request)
            if answer is not None:
                return answer
        return super().dispatch(request, *args, **kwargs)

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [BulkApiKeyRateThrottle()]
        return super().get_throttles()

    def _service(self, raw: Any) -> str | None:
        if raw in (None, ""):
            return None
        # Not a code at all (NUL included): refused before the look-up, which cannot take it.
        if not service_code_valid(raw) or not service_exists(tenant=self.tenant, code=raw):
            raise UnknownService(_("Unknown service code(s): %(codes)s") % {"codes": raw})
        return str(raw)

    @documented(
        operation_id="suppressions_check_one",
        summary="May I send to this number?",
        description=examples.CHECK_DESCRIPTION,
        parameters=[
            OpenApiParameter(
                "phone",
                {"type": "string", "minLength": 1},
                required=True,
                description="The number, e.g. +8613800138000. Not a valid number: `valid: false`.",
            ),
            OpenApiParameter(
                "service",
                {**SERVICE_CODE_SCHEMA, "pattern": "^[-a-zA-Z0-9_]*$"},
                description="A service code: also count opt-outs of it. Empty: none. Unknown: 400.",
            ),
            OpenApiParameter(
                "include",
                {"type": "string", "enum": ["consent"]},
                description="`consent`: also answer `consent`, the latest consent on record (of `service`, "
                "when given): whether it was revoked by an opt-out and whether it is void because the number "
                "changed hands since.",
            ),
            OpenApiParameter(
                "consented_at",
                DATE_FILTER_SCHEMA,
                description="When you obtained the consent you rely on: the answer then says "
                "`reassigned_since_consent` (deactivated or reassigned on or after that day: do not send). "
                + DATE_FILTER_NOTE,
            ),
        ],
        responses={200: NumberStatusDoc, **problems(400, 401, 429)},
        examples=examples.CHECK_ONE_EXAMPLES,
    )
    def get(self, request: Request) -> Response:
        phone = request.query_params.get("phone", "")
        if not phone:
            raise invalid_field("phone", _("Give the number as ?phone=."))
        service = self._service(request.query_params.get("service"))
        include = request.query_params.get("include")
        include_consent = include is not None and _include_consent(include)
        consented_at = _parse_time(
            "consented_at", request.query_params.get("consented_at"), tenant=self.tenant
        )
        status, extras = replica.consistent_read(
            lambda: suppression_check_one(
                tenant=self.tenant,
                phone=phone,
                service_code=service,
                consented_at=consented_at,
                include_consent=include_consent,
            )
        )
        return Response(_status_json(status, extras))

    @documented(
        operation_id="suppressions_check_many",
        summary="Check up to 10,000 numbers at once",
        description=examples.CHECK_MANY_DESCRIPTION,
        request=CheckBodyDoc,
        responses={200: CheckResultDoc, **problems(400, 401, 413, 415, 429)},
        examples=examples.CHECK_MANY_EXAMPLES,
    )
    def post(self, request: Request) -> Response | HttpResponse:
        body = request.data
        numbers = body.get("phones") if isinstance(body, dict) else None
        if not isinstance(numbers, list):
            raise invalid_field("phones", _('Send {"phones": [...]} with a list of numbers.'))
        if len(numbers) > MAX_CHECK_NUMBERS:
            raise TooManyNumbers(
                _(
                    "At most %(max)s numbers per call; this one has %(count)s. Split the list, or use a scrub job."
                )
                % {"max": f"{MAX_CHECK_NUMBERS:,}", "count": f"{len(numbers):,}"},
                field="phones",
            )
        service = self._service(body.get("service"))
        include_consent = "include" in body and _include_consent(body["include"], listed=True)
        default_since = None
        if "consented_at" in body:
            try:
                default_since = consented_at_parse(body["consented_at"], zone=self.tenant.zoneinfo)
            except ValueError as exc:
                raise invalid_field("consented_at", str(exc)) from None
        if (
            default_since is None
            and not include_consent
            and not any(issubclass(kind, dict) for kind in set(map(type, numbers)))
        ):
            # Nothing but the suppressions to answer: the arrays straight to JSON, in one pass.
            answer = suppression_check_batch_plain(tenant=self.tenant, numbers=numbers, service_code=service)
            if answer is not None:
                return HttpResponse(
                    check_answer_json(service=service, answer=answer), content_type="application/json"
                )
        # An item may be {"phone": ..., "consented_at": ...}: that number's own consent time.
        phones_sent: list[Any] = []
        since: list[datetime | None] = []
        item_errors: dict[int, str] = {}
        for index, item in enumerate(numbers):
            if not isinstance(item, dict):
                phones_sent.append(item)
                since.append(default_since)
                continue
            phones_sent.append(item.get("phone"))
            since.append(default_since)
            if "consented_at" in item:
                try:
                    since[-1] = consented_at_parse(item["consented_at"], zone=self.tenant.zoneinfo)
                except ValueError as exc:
                    item_errors[index] = str(exc)

        def read() -> tuple[list[NumberStatus], list[CheckExtras | None]]:
            found = suppression_check_many(tenant=self.tenant, numbers=phones_sent, service_code=service)
            found = [
                NumberStatus(s.phone, None, f"consented_at: {item_errors[i]}") if i in item_errors else s
                for i, s in enumerate(found)
            ]
            extras = check_extras(
                tenant=self.tenant,
                statuses=found,
                consented_at=since,
                include_consent=include_consent,
                service_code=service,
            )
            return found, extras

        # From the replica when one is configured and has replayed every commit (lanzuan/replica.py).
        statuses, extras = replica.consistent_read(read)
        results = [_status_json(s, e) for s, e in zip(statuses, extras, strict=True)]
        return Response(
            {
                "service": service,
                "count": len(results),
                "suppressed": sum(1 for s in statuses if s.suppressed),
                "invalid": sum(1 for s in statuses if not s.valid),
                "results": results,
            }
        )


# --- scrub jobs ------------------------------------------------------------------------


class ScrubJobListView(PartnerAPIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [BulkApiKeyRateThrottle]

    @documented(
        operation_id="scrub_jobs_create",
        summary="Scrub a list of up to 10 million numbers",
        description=examples.SCRUB_DESCRIPTION + upload_limits.limits_note(upload_limits.SCRUB_LIMITS_NOTE),
        request={"multipart/form-data": ScrubJobCreateSerializer},
        parameters=[upload_limits.UPLOAD_RETRY_AFTER],
        responses={
            202: ScrubJobSerializer,
            **problems(400, 401, 415, 429),
            **upload_limits.upload_problems(upload_limits.UploadKind.SCRUB),
        },
        examples=[examples.SCRUB_JOB_EXAMPLE],
        links={202: {"TheJob": link("scrub_jobs_retrieve", "Its progress.", id="$response.body#/id")}},
    )
    def post(self, request: Request) -> Response:
        # Size, Content-Length and the key's daily budget, checked before the body is read.
        data = upload_limits.upload_receive(request, tenant=self.tenant, kind=upload_limits.UploadKind.SCRUB)
        body = ScrubJobCreateSerializer(data=data)
        body.is_valid(raise_exception=True)
        job = scrub.scrub_job_create(
            tenant=self.tenant,
            upload=body.validated_data["file"],
            service_code=body.validated_data.get("service") or None,
            with_reasons=body.validated_data.get("reasons") == "true",
        )
        return Response(ScrubJobSerializer(job, context={"request": request}).data, status=202)


class ScrubJobDetailView(PartnerAPIView):
    @documented(
        operation_id="scrub_jobs_retrieve",
        summary="Progress and counts of a scrub job",
        responses={200: ScrubJobSerializer, **problems(401, 404, 429)},
        examples=[examples.SCRUB_JOB_DONE_EXAMPLE],
    )
    def get(self, request: Request, pk: int) -> Response:
        job = self.scoped(ScrubJob).filter(pk=pk).first()
        if job is None:
            raise Problem(status=404, code="not_found", detail=_("No scrub job with this id."))
        return Response(ScrubJobSerializer(job, context={"request": request}).data)


class FirstRendererNegotiation(BaseContentNegotiation):
    """The result is a CSV whatever the Accept header says; errors stay JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ScrubJobResultView(PartnerAPIView):
    content_negotiation_class = FirstRendererNegotiation

    @documented(
        operation_id="scrub_jobs_result",
        summary="Download the numbers that may be sent to",
        description="A CSV with a `phone` header and one E.164 number per line, in the order of the upload, "
        "each number once. Available when the job is done, for 7 days.",
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                examples=[OpenApiExample("result", value="phone\n+8613800138000\n+8613912345678\n")],
            ),
            **problems(401, 404, 429),
        },
    )
    def get(self, request: Request, pk: int) -> Any:
        job = self.scoped(ScrubJob).filter(pk=pk).first()
        if job is None:
            raise Problem(status=404, code="not_found", detail=_("No scrub job with this id."))
        if job.status != ScrubJob.Status.DONE or not job.result:
            raise Problem(
                status=404,
                code="result_not_available",
                detail=_("This job has no result: it is not done yet, it failed, or its result expired."),
            )
        return FileResponse(
            job.result.open("rb"),
            as_attachment=True,
            filename=f"scrubbed-{job.pk}.csv",
            content_type="text/csv; charset=utf-8",
        )


class ProofPackView(PartnerAPIView):
    content_negotiation_class = FirstRendererNegotiation

    @documented(
        operation_id="unsubscribe_requests_proof",
        summary="The proof pack of a request, for a regulator (ZIP)",
        description=(
            "One ZIP with `index.html` (a readable summary: the request, how the number was verified, "
            "every step with its times and receipt, the texts received and sent, the consent record, the "
            "deadlines, the signed receipt and the audit chain proof), `proof.json` (the data behind it) "
            "and `lanzuan-receipt-<reference>.json` (the signed receipt, checkable at `/verify/` or offline "
            "with the keys at `/.well-known/lanzuan-keys.json`). Numbers are masked throughout. "
            "`index.html` is in the language of `Accept-Language` (zh-Hans unless `en` is asked for). "
            "Every download is recorded in the tenant's audit log."
        ),
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The proof pack."),
            **problems(401, 404, 429),
        },
    )
    def get(self, request: Request, reference: str) -> Any:
        found = (
            self.scoped(UnsubscribeRequest)
            .filter(reference=clean_reference(reference))
            .select_related("tenant")
            .first()
        )
        if found is None:
            raise Problem(status=404, code="not_found", detail=_("No request with this reference."))
        api_key = request.auth
        assert isinstance(api_key, TenantAPIKey)
        pack = proof_pack_export(request=found, actor=f"api_key:{api_key.prefix}", via="api")
        response = HttpResponse(pack.content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{pack.filename}"'
        return response


# --- subscriptions import ------------------------------------------------------------


class SubscriptionImportView(PartnerAPIView):
    parser_classes = [LimitedJSONParser]
    throttle_classes = [BulkApiKeyRateThrottle]

    @documented(
        operation_id="subscriptions_import",
        summary="Create or update up to 10,000 subscriptions",
        description=examples.IMPORT_DESCRIPTION + upload_limits.limits_note(upload_limits.IMPORT_LIMITS_NOTE),
        request={"application/json": SUBSCRIPTION_ITEMS_SCHEMA},
        parameters=[upload_limits.UPLOAD_RETRY_AFTER],
        responses={
            200: ImportResultDoc,
            **problems(400, 401, 415, 429),
            **upload_limits.upload_problems(upload_limits.UploadKind.IMPORT),
        },
        examples=examples.IMPORT_EXAMPLES,
    )
    def post(self, request: Request) -> Response:
        # Content-Length and the key's daily budget, checked before the body is read.
        items = upload_limits.upload_receive(
            request, tenant=self.tenant, kind=upload_limits.UploadKind.IMPORT
        )
        if not isinstance(items, list):
            raise invalid_field("body", _("Send a JSON list of subscriptions."))
        if len(items) > MAX_IMPORT_ITEMS:
            raise TooManyNumbers(
                _("At most %(max)s subscriptions per call; this one has %(count)s.")
                % {"max": f"{MAX_IMPORT_ITEMS:,}", "count": f"{len(items):,}"},
                field="body",
            )
        api_key = request.auth
        assert isinstance(api_key, TenantAPIKey)
        result = subscriptions_import(
            tenant=self.tenant, items=items, captured_by=f"API key {api_key.prefix} ({api_key.name})"
        )
        return Response(ImportResultDoc(result).data)


# --- webhooks ----------------------------------------------------------------------------


class WebhookListView(PartnerAPIView):
    parser_classes = [LimitedJSONParser]

    @documented(
        operation_id="webhooks_list",
        summary="Your webhook endpoints",
        responses={200: WebhookEndpointSerializer(many=True), **problems(401, 429)},
        examples=[examples.WEBHOOK_LIST_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        endpoints = self.scoped(WebhookEndpoint).order_by("id")
        return Response(WebhookEndpointSerializer(endpoints, many=True).data)

    @documented(
        operation_id="webhooks_create",
        summary="Register a webhook endpoint",
        description=examples.WEBHOOK_DESCRIPTION,
        request=WebhookEndpointSerializer,
        responses={
            201: WebhookEndpointCreatedSerializer,
            **problems(400, 401, 413, 415, 429),
            (409, PROBLEM_CONTENT_TYPE): OpenApiResponse(
                ProblemSerializer,
                description=examples.WEBHOOK_LIMIT_DESCRIPTION,
                examples=[examples.WEBHOOK_LIMIT_EXAMPLE],
            ),
        },
        examples=examples.WEBHOOK_CREATE_EXAMPLES,
        links={
            201: {
                "TheEndpoint": link("webhooks_retrieve", "The endpoint.", id="$response.body#/id"),
                "RemoveIt": link("webhooks_destroy", "Remove the endpoint.", id="$response.body#/id"),
            }
        },
    )
    def post(self, request: Request) -> Response:
        body = WebhookEndpointSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, _secret = webhooks.webhook_endpoint_create(
            tenant=self.tenant,
            url=body.validated_data["url"],
            events=body.validated_data["events"],
            secret=body.validated_data.get("secret"),
            description=body.validated_data.get("description", ""),
        )
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=201)


class WebhookDetailView(PartnerAPIView):
    def _endpoint(self, pk: int) -> WebhookEndpoint:
        endpoint: WebhookEndpoint | None = self.scoped(WebhookEndpoint).filter(pk=pk).first()
        if endpoint is None:
            raise Problem(status=404, code="not_found", detail=_("No webhook endpoint with this id."))
        return endpoint

    @documented(
        operation_id="webhooks_retrieve",
        summary="One webhook endpoint",
        responses={200: WebhookEndpointSerializer, **problems(401, 404, 429)},
        examples=[examples.WEBHOOK_EXAMPLE],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookEndpointSerializer(self._endpoint(pk)).data)

    @documented(
        operation_id="webhooks_destroy",
        summary="Remove a webhook endpoint and its delivery log",
        responses={204: None, **problems(401, 404, 429)},
    )
    def delete(self, request: Request, pk: int) -> Response:
        webhooks.webhook_endpoint_delete(endpoint=self._endpoint(pk))
        return Response(status=204)


# --- channels (issue 8) ----------------------------------------------------------


class ChannelsView(PartnerAPIView):
    @documented(
        operation_id="channels_list",
        summary="The ways people can unsubscribe, with the text to show them",
        description=(
            "Every channel with `enabled`; for the ones a person can use, the title and instruction in "
            "`language` (`zh-hans` or `en`; default: the tenant's language), so a partner app shows the same "
            "text as the tenant's own pages. The partner API itself is listed but has no instruction."
        ),
        parameters=[OpenApiParameter("language", str, enum=["zh-hans", "en"], required=False)],
        responses={200: ChannelSerializer(many=True), **problems(400, 401, 429)},
        examples=examples.CHANNEL_EXAMPLES,
    )
    def get(self, request: Request) -> Response:
        language = request.query_params.get("language", self.tenant.default_language)
        if language not in ("zh-hans", "en"):  # an empty value too, as the schema's enum says
            raise invalid_field("language", _("Use zh-hans or en."))
        ways = {way.channel: way for way in ways_to_unsubscribe(tenant=self.tenant, language=language)}
        enabled = {setting.channel for setting in enabled_channels(tenant=self.tenant)}
        rows = []
        for channel in RequestChannel.values:
            way = ways.get(channel)
            rows.append(
                {
                    "channel": channel,
                    "enabled": channel in enabled,
                    "title": way.title if way else "",
                    "instruction": way.instruction if way else "",
                    "url": request.build_absolute_uri(way.url) if way and way.url else "",
                    "keywords": way.keywords if way else [],
                    "numbers": way.numbers if way else [],
                    "app_path": way.app_path if way else "",
                    "hotline_number": way.hotline_number if way else "",
                    "hotline_hours": way.hotline_hours if way else "",
                    "hotline_menu_key": way.hotline_menu_key if way else "",
                }
            )
        return Response(ChannelSerializer(rows, many=True).data)
