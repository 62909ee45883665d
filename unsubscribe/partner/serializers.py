"""Input and output shapes of the partner API.

Single objects go through serializers; the bulk bodies (10,000 numbers) are
validated by plain JSON checks in the views, and the serializers named *Doc only
describe them in the OpenAPI schema.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lanzuan.outbound import UnsafeURL, check_url
from unsubscribe.domain_events import EVENTS
from unsubscribe.models import RequestChannel, RequestDeadline, Step, UnsubscribeRequest, VerificationMethod

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
# A service code as the tenant's admin stores it (Service.code is a SlugField): anything else
# can never name a service, and is refused before any look-up.
SERVICE_CODE_PATTERN = r"^[-a-zA-Z0-9_]+$"
SERVICE_CODE_RE = re.compile(r"[-a-zA-Z0-9_]+")
SERVICE_CODE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": SERVICE_CODE_PATTERN, "maxLength": 50}


def service_code_valid(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 50 and SERVICE_CODE_RE.fullmatch(value) is not None


# The date filters' grammar (unsubscribe.instants) as a pattern the schema states and the view
# checks: a calendar date (29 February in leap years only), optionally a time and an offset.
# Years 1901–8998, so that every date matched is in the instants' range in UTC too (1900-01-01
# at +08:00 is still 1899 there): the schema then promises nothing the parser refuses.
_YEAR = r"(?:19(?:0[1-9]|[1-9][0-9])|[2-7][0-9]{3}|8(?:[0-8][0-9]{2}|9(?:[0-8][0-9]|9[0-8])))"
_LEAP_YEAR = r"(?:(?:19|[2-8][0-9])(?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[357][26])00)"
_MONTH_DAY = (
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
)
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]{1,6})?)?"
_OFFSET = r"(?:Z|z|[+-](?:0[0-9]|1[0-3])(?::?[0-5][0-9])?|[+-]14(?::?00)?)"
DATE_FILTER_PATTERN = rf"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)(?:[T ]{_TIME}{_OFFSET}?)?$"
DATE_FILTER_SCHEMA = {"type": "string", "pattern": DATE_FILTER_PATTERN}
DATE_FILTER_RE = re.compile(DATE_FILTER_PATTERN)


# Text the database stores cannot hold NUL (PostgreSQL): DRF refuses it, and this says so in
# the schema too (drf-spectacular states a RegexValidator as the field's `pattern`).
NO_NUL_PATTERN = "^[^\\u0000]*$"
_NO_NUL = RegexValidator(r"^[^\x00]*\Z", message=_("Null characters are not allowed."))


class StrictCharField(serializers.CharField):
    """A string as sent: DRF's CharField also takes numbers and booleans (as their text) and
    trims whitespace before checking the length, so it accepts what the schema forbids. No NUL,
    as the schema's pattern says."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.validators = [
            *(v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)),
            _NO_NUL,
        ]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- unsubscribe requests -----------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["all"]},
            {"type": "array", "items": SERVICE_CODE_SCHEMA, "minItems": 1, "maxItems": 100},
        ],
        "description": '"all" (every marketing service of the tenant) or a list of the tenant\'s service '
        "codes (an unknown code is a 400 `unknown_services`).",
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
        if isinstance(data, list) and 0 < len(data) <= 100 and all(service_code_valid(c) for c in data):
            return list(data)
        self.fail("invalid")
        return []  # unreachable: fail() raises

    def to_representation(self, value: Any) -> Any:
        return value


_AGENT_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": NO_NUL_PATTERN,
    "description": "The hotline agent.",
}
VERIFICATION_DESCRIPTION = (
    "How you know the person owns the number: `method` (default `partner_assertion`) and, for "
    "`agent_assertion`, the `agent_id`. Other keys are kept with the request as evidence: at most "
    "2,000 characters in all, and no NUL characters (otherwise 400)."
)


def _contains_nul(value: Any) -> bool:
    """PostgreSQL text and jsonb cannot hold U+0000: refused as input, never a 500."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False


# The rule "agent_assertion needs an agent_id" as the schema can say it: one of two shapes.
@extend_schema_field(
    {
        "type": "object",
        "description": VERIFICATION_DESCRIPTION,
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "method": {
                        "type": "string",
                        "enum": [VerificationMethod.PARTNER_ASSERTION, VerificationMethod.OTP],
                        "default": VerificationMethod.PARTNER_ASSERTION,
                    },
                    "agent_id": _AGENT_ID,
                },
            },
            {
                "type": "object",
                "properties": {
                    "method": {"type": "string", "enum": [VerificationMethod.AGENT_ASSERTION]},
                    "agent_id": _AGENT_ID,
                },
                "required": ["method", "agent_id"],
            },
        ],
    }
)
class VerificationSerializer(serializers.Serializer[Any]):
    """`method` and, alongside it, the evidence (kept with the request as given)."""

    method = serializers.ChoiceField(choices=PARTNER_METHODS, default=VerificationMethod.PARTNER_ASSERTION)
    agent_id = StrictCharField(
        required=False, max_length=64, help_text="The hotline agent; required for agent_assertion."
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError(_("Must be an object with a method and its evidence."))
        validated: dict[str, Any] = super().to_internal_value(data)
        evidence = {k: v for k, v in data.items() if k != "method"}
        if _contains_nul(evidence):
            raise serializers.ValidationError(_("The evidence may not contain NUL characters."))
        if len(repr(evidence)) > MAX_EVIDENCE_BYTES:
            raise serializers.ValidationError(_("The evidence is too long (at most 2,000 characters)."))
        if validated["method"] == VerificationMethod.AGENT_ASSERTION and not validated.get("agent_id"):
            raise serializers.ValidationError({"agent_id": _("An agent assertion needs the agent_id.")})
        return {"method": validated["method"], "evidence": evidence}


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "pattern": NO_NUL_PATTERN,
        "example": "+8613800138000",
    }
)
class PhoneField(StrictCharField):
    """A phone number as text; whether it is a valid number is for phones.normalise to say."""


@extend_schema_field(DATE_FILTER_SCHEMA)
class InstantField(StrictCharField):
    """An ISO 8601 date or date and time, as the schema's pattern says (unsubscribe.instants' grammar)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not DATE_FILTER_RE.fullmatch(value):
            raise serializers.ValidationError(
                _("Use an ISO 8601 date or date and time, e.g. 2025-01-31T08:00:00+08:00.")
            )
        return value


class UnsubscribeRequestCreateSerializer(serializers.Serializer[Any]):
    phone = PhoneField(
        min_length=1,
        max_length=32,
        help_text="The number, in any usual form; E.164 is best. Not a valid number: 400 `invalid_phone`.",
    )
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


class DeadlineSerializer(serializers.ModelSerializer[RequestDeadline]):
    regime = serializers.CharField(help_text="cn, us, mailbox, tenant, or a regime the tenant added.")
    rule = serializers.CharField(help_text="The rule within the regime: termination, erasure, revocation, …")
    due_at = serializers.DateTimeField(help_text="When the rule falls due (computed at filing).")
    met_at = serializers.DateTimeField(
        allow_null=True, help_text="When what the rule measures happened; null until then."
    )

    class Meta:
        model = RequestDeadline
        fields = ["regime", "rule", "due_at", "met_at"]


class UnsubscribeRequestSerializer(serializers.ModelSerializer[UnsubscribeRequest]):
    scope = serializers.SerializerMethodField()
    steps = StepSerializer(many=True, read_only=True)
    deadlines = DeadlineSerializer(
        many=True,
        read_only=True,
        help_text="The request's due time under each regime that applies to its number and channel.",
    )
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
            "deadlines",
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


class ConsentStatusDoc(serializers.Serializer[Any]):
    on_record = serializers.BooleanField(help_text="A consent of this number (to `service`) is on record.")
    given_at = serializers.DateTimeField(allow_null=True, help_text="The latest one's time.")
    revoked = serializers.BooleanField(help_text="An opt-out revoked it.")
    revoked_at = serializers.DateTimeField(allow_null=True)
    void = serializers.BooleanField(help_text="The number changed hands on or after its day: do not send.")
    void_since = serializers.DateField(allow_null=True)


class NumberStatusDoc(serializers.Serializer[Any]):
    phone = serializers.JSONField(
        help_text="The item as you sent it: a string, or (in a list) any other JSON value, which is "
        "reported invalid."
    )
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
    platform_do_not_market = serializers.BooleanField(
        required=False,
        help_text="Present (true) when the person put the number on the platform-wide do-not-market "
        "list (one-stop hub): no provider may send it marketing, whatever its own opt-outs; `suppressed` "
        "is then true and `since` is the earlier of the entry and the opt-outs. Only the person can lift it.",
    )
    error = serializers.CharField(required=False, help_text="Why the number is invalid.")
    reassigned_since = serializers.DateField(
        required=False,
        help_text="Present when a deactivation or reassignment of the number is on record: the latest "
        "one's day. Consents given on or before it are void; opt-outs stay in force.",
    )
    reassigned_since_consent = serializers.BooleanField(
        required=False,
        help_text="Asked with `consented_at`: whether the number was deactivated or reassigned on or after "
        "that day. True: the consent is not the present holder's; do not send.",
    )
    consent = ConsentStatusDoc(required=False, help_text="Asked with include=consent.")


@extend_schema_field({**SERVICE_CODE_SCHEMA, "pattern": "^[-a-zA-Z0-9_]*$"})
class ServiceCodeField(serializers.CharField):
    """A service code of the tenant; empty (or null, where allowed) for none."""


class CheckBodyDoc(serializers.Serializer[Any]):
    phones = serializers.ListField(
        child=serializers.JSONField(),
        max_length=10_000,
        help_text="The numbers, as strings; an item that is not a valid number (or not a string or "
        "an integer) is answered `valid: false` with an `error`, in its place. An item may also be "
        '`{"phone": ..., "consented_at": ...}`, with that number\'s own consent time. More than 10,000: 413.',
    )
    service = ServiceCodeField(
        required=False,
        allow_null=True,
        help_text="A service code: also count opt-outs of it. Empty or null: none. Unknown: 400.",
    )
    include = serializers.ListField(
        child=serializers.ChoiceField(choices=["consent"]),
        required=False,
        help_text='["consent"]: also answer `consent` for each valid number (the latest consent on record).',
    )
    consented_at = InstantField(
        required=False,
        help_text="When you obtained the consents you rely on (each item may give its own): each answer "
        "then says `reassigned_since_consent`.",
    )


class CheckResultDoc(serializers.Serializer[Any]):
    service = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    invalid = serializers.IntegerField()
    results = NumberStatusDoc(many=True)


# --- scrub jobs -------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class UploadField(serializers.FileField):
    """A file part of a multipart body (drf-spectacular would call it a URI, as in answers)."""


class ScrubJobCreateSerializer(serializers.Serializer[Any]):
    file = UploadField(
        help_text="CSV: one number per line, or a header row naming a `phone` column. "
        "UTF-8. Up to 10,000,000 rows. Empty: 400. A file that cannot be read fails as a job, "
        "with the reason in `error`."
    )
    service = ServiceCodeField(
        required=False,
        allow_blank=True,
        max_length=50,
        trim_whitespace=False,
        help_text="Also remove numbers opted out of this service (default: only opt-outs of all marketing). "
        "Unknown: 400.",
    )
    reasons = serializers.ChoiceField(  # a form field: the two words only, not "1", "yes" or "on"
        choices=["true", "false"],
        required=False,
        help_text="`true`: the result lists every row as `row,phone,result` (`phone` in E.164, or as written "
        "when invalid; `result`: `sendable`, `suppressed`, `platform_do_not_market`, `duplicate` or `invalid`) "
        "instead of only the sendable numbers.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # A form field sent twice would be read as its last value: refused instead.
        getlist = getattr(data, "getlist", None)  # a form's QueryDict; JSON has no repeats
        repeated = [name for name, _field in self.fields.items() if getlist and len(getlist(name)) > 1]
        if repeated:
            raise serializers.ValidationError({name: [_("Send this field once.")] for name in repeated})
        validated: dict[str, Any] = super().to_internal_value(data)
        return validated

    def validate_service(self, value: str) -> str:
        if value and not service_code_valid(value):
            raise serializers.ValidationError(_("Not a service code."))
        return value


class ScrubJobSerializer(serializers.ModelSerializer[ScrubJob]):
    state = serializers.CharField(source="status")
    service = serializers.CharField(source="service_code")
    reasons = serializers.BooleanField(source="with_reasons")
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
            "platform_do_not_market",
            "sendable",
            "reasons",
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


SUBSCRIPTION_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "phone": {"type": "string", "description": "The number, in any usual form; E.164 is best."},
        "service": {"type": "string", "description": "A service code of your tenant."},
        "consent_source": {"type": "string", "maxLength": 200},
        "consent_at": {
            "type": "string",
            "nullable": True,
            "description": "ISO 8601. Without an offset (or a bare date: its midnight), read in your "
            "tenant's time zone. Default: now. An unreadable value, a year outside 1900–8999, an offset "
            "beyond ±14:00, a time in the future or a local time skipped by a daylight-saving change "
            "makes the item invalid (listed in `errors`); a repeated (autumn) local time is the first "
            "of the two.",
        },
        "consent_method": {
            "type": "string",
            "enum": ["form", "sms_keyword", "contract", "import"],
            "description": "How the consent was given (the consent-evidence ledger). Default: import.",
        },
        "consent_wording": {
            "type": "string",
            "maxLength": 10_000,
            "description": "The exact words the person was shown; stored once, referenced by SHA-256.",
        },
        "consent_order_id": {"type": "string", "maxLength": 100},
        "consent_page_version": {"type": "string", "maxLength": 100},
        "consent_ip": {
            "type": "string",
            "description": "The IP address the consent came from, where lawful.",
        },
        "consent_captured_by": {
            "type": "string",
            "maxLength": 200,
            "description": "Who captured the consent. Default: this API key.",
        },
    },
    "required": ["phone", "service"],
}

# The import checks each item by itself and reports the ones it refuses in `errors` (a 200):
# an item of any other shape is accepted into the call, so the schema says "a subscription,
# or anything else (then listed in errors)" rather than refusing the whole list for one item.
SUBSCRIPTION_ITEMS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": 10_000,
    "description": "Up to 10,000 subscriptions (more: 413). Each item is checked by itself: one that is "
    "not a subscription (not an object, a field missing, of the wrong type or invalid) is skipped and "
    "listed in `errors`, and the others are saved.",
    "items": {"anyOf": [SUBSCRIPTION_ITEM_SCHEMA, {"description": "Anything else: listed in `errors`."}]},
}


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


@extend_schema_field({"type": "string", "format": "uri", "pattern": "^https://", "maxLength": 500})
class WebhookURLField(serializers.URLField):
    """An https:// URL on a public address (the platform may allow others, e.g. in development)."""


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    url = WebhookURLField(
        max_length=500,
        trim_whitespace=False,
        help_text="An https:// URL on a public address; a private or internal one is refused (400).",
    )
    description = StrictCharField(required=False, allow_blank=True, max_length=200)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENTS)), min_length=1, max_length=len(EVENTS)
    )
    secret = StrictCharField(
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
    secret = StrictCharField(read_only=True, help_text="Shown once: store it now.")

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
