"""Input and output shapes of the partner API.

Single objects go through serializers; the bulk bodies (10,000 numbers) are
validated by plain JSON checks in the views, and the serializers named *Doc only
describe them in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from lanzuan.outbound import UnsafeURL, check_url
from unsubscribe.domain_events import EVENTS
from unsubscribe.models import RequestChannel, Step, UnsubscribeRequest, VerificationMethod

from .models import ScrubJob, WebhookEndpoint

PARTNER_CHANNELS = [RequestChannel.APP, RequestChannel.HOTLINE, RequestChannel.PARTNER]
# What a partner may assert about how it verified the person. Methods the platform
# itself performs (a reply SMS, a signed link, an administrator) are not claimable.
PARTNER_METHODS = [
    VerificationMethod.PARTNER_ASSERTION,
    VerificationMethod.AGENT_ASSERTION,
    VerificationMethod.OTP,
]
MAX_EVIDENCE_BYTES = 2000


# --- unsubscribe requests -----------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["all"]},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100},
        ],
        "description": '"all" (every marketing service of the tenant) or a list of service codes.',
        "example": ["daily-deals"],
    }
)
class ScopeField(serializers.Field[list[str] | str, Any, Any, Any]):  # str: the default "all", kept as is
    default_error_messages = {
        "invalid": _('Use "all" or a list of service codes.'),
    }

    def to_internal_value(self, data: Any) -> list[str]:
        if data == "all":
            return []
        if (
            isinstance(data, list)
            and 0 < len(data) <= 100
            and all(isinstance(code, str) and 0 < len(code.strip()) <= 50 for code in data)
        ):
            return [code.strip() for code in data]
        self.fail("invalid")
        return []  # unreachable: fail() raises

    def to_representation(self, value: Any) -> Any:
        return value


class VerificationSerializer(serializers.Serializer[Any]):
    """`method` and, alongside it, the evidence (kept with the request as given)."""

    method = serializers.ChoiceField(choices=PARTNER_METHODS, default=VerificationMethod.PARTNER_ASSERTION)
    agent_id = serializers.CharField(
        required=False, max_length=64, help_text="The hotline agent; required for agent_assertion."
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError(_("Must be an object with a method and its evidence."))
        validated: dict[str, Any] = super().to_internal_value(data)
        evidence = {k: v for k, v in data.items() if k != "method"}
        if len(repr(evidence)) > MAX_EVIDENCE_BYTES:
            raise serializers.ValidationError(_("The evidence is too long (at most 2,000 characters)."))
        if validated["method"] == VerificationMethod.AGENT_ASSERTION and not validated.get("agent_id"):
            raise serializers.ValidationError({"agent_id": _("An agent assertion needs the agent_id.")})
        return {"method": validated["method"], "evidence": evidence}


class UnsubscribeRequestCreateSerializer(serializers.Serializer[Any]):
    phone = serializers.CharField(max_length=32, help_text="The number, in any usual form; E.164 is best.")
    channel = serializers.ChoiceField(choices=PARTNER_CHANNELS, default=RequestChannel.PARTNER)
    scope = ScopeField(default="all")
    verification = VerificationSerializer(required=False)
    language = serializers.ChoiceField(
        choices=["zh-hans", "en"], required=False, help_text="Language of the confirmation message."
    )

    def validate_scope(self, value: Any) -> list[str]:
        return [] if value == "all" else list(value)


class StepSerializer(serializers.ModelSerializer[Step]):
    target = serializers.CharField(source="target_name")

    class Meta:
        model = Step
        fields = [
            "kind",
            "target",
            "status",
            "attempts",
            "started_at",
            "finished_at",
            "last_error",
            "receipt",
        ]


class UnsubscribeRequestSerializer(serializers.ModelSerializer[UnsubscribeRequest]):
    scope = serializers.SerializerMethodField()
    steps = StepSerializer(many=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = UnsubscribeRequest
        fields = [
            "reference",
            "url",
            "state",
            "channel",
            "scope",
            "phone_masked",
            "phone_hash",
            "verification_method",
            "filed_by",
            "language",
            "attention_reason",
            *UnsubscribeRequest.TIMELINE,
            "steps",
        ]

    @extend_schema_field(ScopeField)
    def get_scope(self, obj: UnsubscribeRequest) -> Any:
        return "all" if obj.scope_all else sorted(s.code for s in obj.services.all())

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj: UnsubscribeRequest) -> str:
        path = reverse("partner-request-detail", args=[obj.reference])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class UnsubscribeRequestPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next page, or null at the end.")
    previous = serializers.URLField(allow_null=True)
    results = UnsubscribeRequestSerializer(many=True)


# --- suppression checks ------------------------------------------------------------------


class NumberStatusDoc(serializers.Serializer[Any]):
    phone = serializers.CharField(help_text="As you sent it.")
    valid = serializers.BooleanField()
    e164 = serializers.CharField(required=False, help_text="The number normalised (valid numbers).")
    suppressed = serializers.BooleanField(
        required=False, help_text="Do not send (valid numbers): opted out of all, or of `service`."
    )
    since = serializers.DateTimeField(required=False, allow_null=True)
    scopes = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text='Every opt-out of this number: "all" and/or service codes.',
    )
    error = serializers.CharField(required=False, help_text="Why the number is invalid.")


class CheckBodyDoc(serializers.Serializer[Any]):
    phones = serializers.ListField(child=serializers.CharField(), max_length=10_000)
    service = serializers.CharField(required=False, allow_null=True)


class CheckResultDoc(serializers.Serializer[Any]):
    service = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    invalid = serializers.IntegerField()
    results = NumberStatusDoc(many=True)


# --- scrub jobs -------------------------------------------------------------------------


class ScrubJobCreateSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(
        help_text="CSV: one number per line, or a header row naming a `phone` column. "
        "UTF-8. Up to 10,000,000 rows."
    )
    service = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=50,
        help_text="Also remove numbers opted out of this service (default: only opt-outs of all marketing).",
    )


class ScrubJobSerializer(serializers.ModelSerializer[ScrubJob]):
    state = serializers.CharField(source="status")
    service = serializers.CharField(source="service_code")
    result_url = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = ScrubJob
        fields = [
            "id",
            "url",
            "state",
            "phase",
            "service",
            "original_name",
            "total_rows",
            "rows_done",
            "percent",
            "invalid",
            "duplicate",
            "suppressed",
            "sendable",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "result_url",
        ]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj: ScrubJob) -> str:
        return self._absolute(reverse("partner-scrub-job-detail", args=[obj.pk]))

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_result_url(self, obj: ScrubJob) -> str | None:
        if obj.status != ScrubJob.Status.DONE or not obj.result:
            return None
        return self._absolute(reverse("partner-scrub-job-result", args=[obj.pk]))


# --- subscriptions import -------------------------------------------------------------


class SubscriptionItemDoc(serializers.Serializer[Any]):
    phone = serializers.CharField()
    service = serializers.CharField(help_text="A service code of your tenant.")
    consent_source = serializers.CharField(required=False, max_length=200)
    consent_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="ISO 8601. Without an offset (or a bare date: its midnight), read in your tenant's "
        "time zone. Default: now. An unreadable value, a year outside 1900–8999, an offset beyond "
        "±14:00, a time in the future or a local time skipped by a daylight-saving change makes the "
        "item invalid (listed in `errors`); a repeated (autumn) local time is the first of the two.",
    )


@extend_schema_serializer(many=False)  # the examples are whole lists: not to be wrapped in another
class SubscriptionItemsDoc(serializers.ListSerializer[Any]):
    """The body of an import: a JSON list of subscriptions."""

    child = SubscriptionItemDoc()


class ItemErrorDoc(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="Position of the item in your list, from 0.")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ImportResultDoc(serializers.Serializer[Any]):
    """Every item is counted once: received = created + updated + skipped_opted_out
    + duplicates + invalid."""

    received = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    skipped_opted_out = serializers.IntegerField(
        help_text="Items for a number that opted out of that service or of all marketing (or whose "
        "subscription was ended): not imported, the opt-out stands."
    )
    duplicates = serializers.IntegerField(
        help_text="Items repeating the number and service of another item; the last one was used."
    )
    invalid = serializers.IntegerField(help_text="Items refused; each is listed in `errors`.")
    errors = ItemErrorDoc(many=True)  # type: ignore[assignment]  # a field, popped by DRF's metaclass


# --- webhooks ---------------------------------------------------------------------------


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENTS)), min_length=1, max_length=len(EVENTS)
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=16,
        max_length=200,
        help_text="Signing secret (write-only). Omit it and one is generated and returned once.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "events", "secret", "is_active", "created_at"]
        read_only_fields = ["id", "is_active", "created_at"]

    def validate_url(self, value: str) -> str:
        try:
            check_url(value)
        except UnsafeURL as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once: store it now.")

    class Meta(WebhookEndpointSerializer.Meta):
        pass


class ChannelSerializer(serializers.Serializer[Any]):
    """One way to unsubscribe and the words people see for it (read-only)."""

    channel = serializers.CharField()
    enabled = serializers.BooleanField()
    title = serializers.CharField(allow_blank=True)
    instruction = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)
    keywords = serializers.ListField(child=serializers.CharField())
    numbers = serializers.ListField(child=serializers.CharField())
    app_path = serializers.CharField(allow_blank=True)
    hotline_number = serializers.CharField(allow_blank=True)
    hotline_hours = serializers.CharField(allow_blank=True)
    hotline_menu_key = serializers.CharField(allow_blank=True)
