"""Partner API: the consent-evidence ledger (`/api/v1/consents`) and reported number
deactivations and reassignments (`/api/v1/number-events`), issue 16.

Thin: input checked here, the work in unsubscribe.consents and unsubscribe.reassignments.
No raw number is stored or answered: records carry the tenant's digest and the masked number.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from lanzuan import phones
from tenants.models import TenantAPIKey
from unsubscribe.consents.selectors import consent_records, wordings
from unsubscribe.consents.services import MAX_WORDING, ConsentEvidence, consents_record
from unsubscribe.instants import InstantError, instant_parse
from unsubscribe.models import ConsentRecord, NumberEvent, Service
from unsubscribe.reassignments.selectors import number_event_dates, void_since, voided_subscriptions
from unsubscribe.reassignments.services import MAX_EVENT_ITEMS, number_events_from_csv, number_events_record

from .errors import TooManyNumbers, UnknownService
from .parsers import LimitedCSVParser, LimitedJSONParser
from .problems import Problem, field_error, invalid_field
from .serializers import (
    SERVICE_CODE_SCHEMA,
    InstantField,
    ItemErrorDoc,
    PhoneField,
    StrictCharField,
    service_code_valid,
)
from .throttling import BulkApiKeyRateThrottle
from .views import PartnerAPIView, documented, problems


def _captured_by(request: Request) -> str:
    api_key = request.auth
    assert isinstance(api_key, TenantAPIKey)
    return f"API key {api_key.prefix} ({api_key.name})"


def _e164(raw: str | None) -> str:
    if not raw:
        raise invalid_field("phone", _("Give the number as ?phone=."))
    try:
        return phones.normalise(raw)
    except phones.InvalidPhoneNumber as exc:
        raise Problem(
            status=400, code="invalid_phone", detail=str(exc), errors=[field_error("phone", str(exc))]
        ) from None


# --- consents ------------------------------------------------------------------------------


@extend_schema_field(SERVICE_CODE_SCHEMA)
class ServiceCodeField(StrictCharField):
    """One of the tenant's service codes (its form checked here, its existence by the view)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not service_code_valid(value):
            raise serializers.ValidationError(_("Not a service code."))
        return value


@extend_schema_field({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
class IPField(serializers.IPAddressField):
    """An IPv4 or IPv6 address, as text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class EvidenceSerializer(serializers.Serializer[Any]):
    order_id = StrictCharField(required=False, allow_blank=True, max_length=100)
    page_version = StrictCharField(required=False, allow_blank=True, max_length=100)
    ip = IPField(required=False, help_text="Where lawful; blanked when the number is erased.")


class ConsentCreateSerializer(serializers.Serializer[Any]):
    phone = PhoneField(
        min_length=1, max_length=32, help_text="The number; not a valid number: 400 `invalid_phone`."
    )
    service = ServiceCodeField(help_text="A service code of your tenant (unknown: 400 `unknown_services`).")
    source = serializers.ChoiceField(choices=ConsentRecord.Source.choices)  # type: ignore[assignment]  # a field
    given_at = InstantField(
        required=False,
        help_text="When the person consented (ISO 8601; without an offset, the tenant's time zone). "
        "Not in the future (400). Default: now.",
    )
    wording = StrictCharField(
        required=False, allow_blank=True, max_length=MAX_WORDING, help_text="The exact words shown."
    )
    source_detail = StrictCharField(required=False, allow_blank=True, max_length=200)
    evidence = EvidenceSerializer(required=False)
    captured_by = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="Who captured it. Default: this API key."
    )


class ConsentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    service = serializers.CharField()
    phone_masked = serializers.CharField()
    phone_hash = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field, popped by DRF's metaclass
    source_detail = serializers.CharField(allow_blank=True)
    given_at = serializers.DateTimeField()
    wording_sha256 = serializers.CharField(allow_blank=True)
    wording = serializers.CharField(allow_null=True, help_text="The words, or null if none was recorded.")
    evidence = serializers.DictField(
        child=serializers.CharField(allow_null=True, allow_blank=True),
        help_text="order_id, page_version, ip (blank after the number's erasure).",
    )
    captured_by = serializers.CharField(allow_blank=True)
    recorded_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoked_by_request = serializers.CharField(
        allow_null=True, help_text="The reference of the unsubscribe request that revoked it."
    )
    minimised_at = serializers.DateTimeField(allow_null=True)
    void = serializers.BooleanField(
        help_text="The number was deactivated or reassigned on or after the day of the consent: "
        "the present holder never gave it. Do not send on it."
    )
    void_since = serializers.DateField(allow_null=True)


class ConsentListDoc(serializers.Serializer[Any]):
    phone_hash = serializers.CharField()
    reassigned_since = serializers.DateField(
        allow_null=True, help_text="The latest deactivation or reassignment on record, or null."
    )
    results = ConsentSerializer(many=True)


def _consent_json(record: ConsentRecord, words: dict[str, str], void: Any) -> dict[str, Any]:
    return {
        "id": record.pk,
        "service": record.service.code,
        "phone_masked": record.phone_masked,
        "phone_hash": record.phone_hash,
        "source": record.source,
        "source_detail": record.source_detail,
        "given_at": localtime(record.given_at).isoformat(),
        "wording_sha256": record.wording_sha256,
        "wording": words.get(record.wording_sha256),
        "evidence": {
            "order_id": record.evidence_order_id,
            "page_version": record.evidence_page_version,
            "ip": record.evidence_ip,
        },
        "captured_by": record.captured_by,
        "recorded_at": localtime(record.recorded_at).isoformat(),
        "revoked_at": localtime(record.revoked_at).isoformat() if record.revoked_at else None,
        "revoked_by_request": record.revoked_by_request.reference if record.revoked_by_request else None,
        "minimised_at": localtime(record.minimised_at).isoformat() if record.minimised_at else None,
        "void": void is not None,
        "void_since": void.isoformat() if void else None,
    }


CONSENT_EXAMPLE = {
    "id": 7,
    "service": "daily-deals",
    "phone_masked": "138****8000",
    "phone_hash": "3f1c…",
    "source": "form",
    "source_detail": "",
    "given_at": "2025-01-31T08:00:00+08:00",
    "wording_sha256": "9b74c9897bac770ffc029102a200c5de…",
    "wording": "我同意接收每日优惠短信，回复TD退订。",
    "evidence": {"order_id": "A-1001", "page_version": "signup-v3", "ip": "203.0.113.7"},
    "captured_by": "API key lz_ab12 (crm)",
    "recorded_at": "2025-01-31T08:00:02+08:00",
    "revoked_at": None,
    "revoked_by_request": None,
    "minimised_at": None,
    "void": False,
    "void_since": None,
}


class ConsentListView(PartnerAPIView):
    parser_classes = [LimitedJSONParser]

    @documented(
        operation_id="consents_create",
        summary="Record a person's consent, with its evidence",
        description="One consent to one service: how (`source`), when (`given_at`), the exact words shown "
        "(`wording`, stored once and referenced by its SHA-256), the evidence (`order_id`, `page_version`, "
        "`ip` where lawful) and who captured it. No raw number is kept: the record holds your tenant's "
        "digest and the masked number. The same service, number and `given_at` again: 200 with the record "
        "on file. A consent older than an opt-out on record is stored already revoked. When the number "
        "is erased the record is kept minimised (evidence blanked) for your consent retention, then deleted.",
        request=ConsentCreateSerializer,
        responses={
            201: OpenApiResponse(ConsentSerializer, description="Recorded."),
            200: OpenApiResponse(ConsentSerializer, description="Already on record."),
            **problems(400, 401, 413, 415, 429),
        },
        examples=[
            OpenApiExample(
                "A web form",
                request_only=True,
                value={
                    "phone": "+8613800138000",
                    "service": "daily-deals",
                    "source": "form",
                    "given_at": "2025-01-31T08:00:00+08:00",
                    "wording": "我同意接收每日优惠短信，回复TD退订。",
                    "evidence": {"order_id": "A-1001", "page_version": "signup-v3", "ip": "203.0.113.7"},
                },
            ),
            OpenApiExample("Recorded", response_only=True, value=CONSENT_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        body = ConsentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        e164 = _e164(data["phone"])
        service = self.scoped(Service).filter(code=data["service"]).first()
        if service is None:
            raise UnknownService(_("Unknown service code(s): %(codes)s") % {"codes": data["service"]})
        given_at = timezone.now()
        if data.get("given_at"):
            try:
                given_at = instant_parse(data["given_at"], tz=self.tenant.zoneinfo, consent=True) or given_at
            except InstantError as exc:
                raise invalid_field("given_at", exc.message) from None
        evidence = data.get("evidence") or {}
        digest = phones.tenant_phone_hash(self.tenant.pk, e164)
        existed = (
            self.scoped(ConsentRecord).filter(service=service, phone_hash=digest, given_at=given_at).exists()
        )
        with transaction.atomic():
            (record,) = consents_record(
                tenant=self.tenant,
                consents=[
                    ConsentEvidence(
                        service_id=service.pk,
                        phone_hash=digest,
                        phone_masked=phones.mask(e164),
                        given_at=given_at,
                        source=data["source"],
                        source_detail=data.get("source_detail", ""),
                        wording=data.get("wording", ""),
                        order_id=evidence.get("order_id", ""),
                        page_version=evidence.get("page_version", ""),
                        ip=evidence.get("ip"),
                        captured_by=data.get("captured_by", ""),
                    )
                ],
                captured_by=_captured_by(request),
            )
        record = consent_records(tenant=self.tenant, phone_hash=digest).get(pk=record.pk)
        days = number_event_dates(tenant=self.tenant, digests=[digest]).get(digest, [])
        output = _consent_json(
            record,
            wordings(tenant=self.tenant, hashes=[record.wording_sha256]),
            void_since(record.given_at, days, self.tenant.zoneinfo),
        )
        return Response(output, status=200 if existed else 201)

    @documented(
        operation_id="consents_list",
        summary="The consents on record for a number",
        description="Newest first (at most 500), each with whether it was revoked (and by which request) "
        "and whether it is void because the number was deactivated or reassigned since.",
        parameters=[
            OpenApiParameter(
                "phone",
                {"type": "string", "minLength": 1},
                required=True,
                description="The number; not a valid number: 400 `invalid_phone`.",
            ),
            OpenApiParameter(
                "service",
                SERVICE_CODE_SCHEMA,
                description="Only this service's consents (an unknown code: an empty list).",
            ),
        ],
        responses={200: ConsentListDoc, **problems(400, 401, 429)},
        examples=[
            OpenApiExample(
                "One consent",
                response_only=True,
                value={"phone_hash": "3f1c…", "reassigned_since": None, "results": [CONSENT_EXAMPLE]},
            )
        ],
    )
    def get(self, request: Request) -> Response:
        e164 = _e164(request.query_params.get("phone"))
        code = request.query_params.get("service")
        if code is not None and not service_code_valid(code):
            raise invalid_field("service", _("Not a service code."))
        digest = phones.tenant_phone_hash(self.tenant.pk, e164)
        records = consent_records(tenant=self.tenant, phone_hash=digest)
        if code:
            records = records.filter(service__code=code)
        found = list(records[:500])
        days = number_event_dates(tenant=self.tenant, digests=[digest]).get(digest, [])
        words = wordings(tenant=self.tenant, hashes=[r.wording_sha256 for r in found])
        zone = self.tenant.zoneinfo
        return Response(
            {
                "phone_hash": digest,
                "reassigned_since": max(days).isoformat() if days else None,
                "results": [_consent_json(r, words, void_since(r.given_at, days, zone)) for r in found],
            }
        )


# --- number events -------------------------------------------------------------------------


NUMBER_EVENT_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "phone": {"type": "string", "description": "The number, in any usual form; E.164 is best."},
        "event": {"type": "string", "enum": NumberEvent.Kind.values},
        "date": {
            "type": "string",
            "format": "date",
            "description": "The day it happened (YYYY-MM-DD), not in the future.",
        },
    },
    "required": ["phone", "event", "date"],
}

NUMBER_EVENT_ITEMS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_EVENT_ITEMS,
    "description": "Up to 10,000 reports (more: 413). Each item is checked by itself: one that is not a "
    "report (not an object, a field missing or invalid, a date in the future) is skipped and listed in "
    "`errors`, and the others are recorded.",
    "items": {"anyOf": [NUMBER_EVENT_ITEM_SCHEMA, {"description": "Anything else: listed in `errors`."}]},
}


class NumberEventsResultDoc(serializers.Serializer[Any]):
    """received = recorded + duplicates + invalid."""

    received = serializers.IntegerField()
    recorded = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Reports already on record (or repeated in the list).")
    invalid = serializers.IntegerField()
    errors = ItemErrorDoc(many=True)  # type: ignore[assignment]  # a field, popped by DRF's metaclass


class NumberEventDoc(serializers.Serializer[Any]):
    event = serializers.CharField()
    date = serializers.DateField()
    phone_masked = serializers.CharField()
    reported_by = serializers.CharField(allow_blank=True)
    recorded_at = serializers.DateTimeField()
    voided_subscriptions = serializers.IntegerField(
        help_text="Your subscriptions of the number whose consent it voids (given on or before its day)."
    )


class NumberEventListDoc(serializers.Serializer[Any]):
    phone_hash = serializers.CharField()
    results = NumberEventDoc(many=True)


class NumberEventListView(PartnerAPIView):
    parser_classes = [LimitedJSONParser, LimitedCSVParser]

    def get_throttles(self) -> list[Any]:
        if self.request.method == "POST":
            return [BulkApiKeyRateThrottle()]
        return super().get_throttles()

    @documented(
        operation_id="number_events_create",
        summary="Report numbers deactivated or given to a new holder",
        description="A JSON list of `{phone, event, date}`: `deactivated` or `reassigned` on that day; or the "
        "same as a CSV body (`Content-Type: text/csv`, UTF-8, a header row naming `phone,event,date`). "
        "Consents given on or before that day are void from then on (the present holder never gave them): "
        "the check API says `reassigned_since`, and the consent records `void`. Opt-outs on record stay "
        "in force. The same report again is counted as a duplicate. Staff can upload the same CSV in the "
        "admin.",
        request={
            "application/json": NUMBER_EVENT_ITEMS_SCHEMA,
            "text/csv": {
                "type": "string",
                "pattern": "^\ufeff?phone,event,date\r?\n[^\u0000]*$",
                "description": "The header row `phone,event,date`, then one report per row, e.g. "
                "`+8613800138000,reassigned,2025-03-01`.",
            },
        },
        responses={200: NumberEventsResultDoc, **problems(400, 401, 413, 415, 429)},
        examples=[
            OpenApiExample(
                "Two reports",
                request_only=True,
                value=[
                    {"phone": "+8613800138000", "event": "reassigned", "date": "2025-03-01"},
                    {"phone": "+8613912345678", "event": "deactivated", "date": "2025-02-10"},
                ],
            ),
            OpenApiExample(
                "Answer",
                response_only=True,
                value={"received": 2, "recorded": 2, "duplicates": 0, "invalid": 0, "errors": []},
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        items = request.data
        if isinstance(items, str):  # text/csv
            try:
                items = number_events_from_csv(items)
            except ValueError as exc:
                raise invalid_field("body", str(exc)) from None
        if not isinstance(items, list):
            raise invalid_field("body", _("Send a JSON list of reports."))
        if len(items) > MAX_EVENT_ITEMS:
            raise TooManyNumbers(
                _("At most %(max)s reports per call; this one has %(count)s.")
                % {"max": f"{MAX_EVENT_ITEMS:,}", "count": f"{len(items):,}"},
                field="body",
            )
        result = number_events_record(tenant=self.tenant, items=items, reported_by=_captured_by(request))
        return Response(NumberEventsResultDoc(result).data)

    @documented(
        operation_id="number_events_list",
        summary="The deactivations and reassignments on record for a number",
        parameters=[
            OpenApiParameter(
                "phone",
                {"type": "string", "minLength": 1},
                required=True,
                description="The number; not a valid number: 400 `invalid_phone`.",
            )
        ],
        responses={200: NumberEventListDoc, **problems(400, 401, 429)},
        examples=[
            OpenApiExample(
                "Reassigned",
                response_only=True,
                value={
                    "phone_hash": "3f1c…",
                    "results": [
                        {
                            "event": "reassigned",
                            "date": "2025-03-01",
                            "phone_masked": "138****8000",
                            "reported_by": "API key lz_ab12 (operator feed)",
                            "recorded_at": "2025-03-02T09:00:00+08:00",
                            "voided_subscriptions": 2,
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        digest = phones.tenant_phone_hash(self.tenant.pk, _e164(request.query_params.get("phone")))
        events = self.scoped(NumberEvent).filter(phone_hash=digest).select_related("tenant")
        return Response(
            {
                "phone_hash": digest,
                "results": [
                    {
                        "event": event.kind,
                        "date": event.occurred_on.isoformat(),
                        "phone_masked": event.phone_masked,
                        "reported_by": event.reported_by,
                        "recorded_at": localtime(event.created_at).isoformat(),
                        "voided_subscriptions": voided_subscriptions(event).count(),
                    }
                    for event in events
                ],
            }
        )
