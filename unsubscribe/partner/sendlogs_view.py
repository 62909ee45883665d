"""The partner API of send logs (issue 17): `POST /api/v1/send-logs` takes what a sender sent, as a
JSON list (stored at once) or a CSV (a background import), and `GET /api/v1/send-logs/imports/{id}`
shows an import's progress. Thin: the core reads and stores the records (unsubscribe/sendlogs/)."""

from __future__ import annotations

import re
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.models import TenantAPIKey
from unsubscribe.sendlogs.records import SendRecordReader
from unsubscribe.sendlogs.services import send_logs_ingest

from . import examples, sendlog_import, upload_limits
from .errors import InvalidUpload, TooManyNumbers
from .models import SendLogImport
from .parsers import LimitedCSVParser, LimitedJSONParser
from .problems import Problem, invalid_field
from .serializers import DATE_FILTER_SCHEMA, NO_NUL_PATTERN, UploadField
from .throttling import BulkApiKeyRateThrottle
from .views import PartnerAPIView, documented, link, problems

MAX_ITEMS = 10_000
# A text/csv body: a header row (lower case) naming sent_at, then the rows. The view checks the same.
CSV_BODY_PATTERN = "^\ufeff?[a-z_,]*sent_at[a-z_,]*\r?\n[^\u0000]*$"
_CSV_BODY = re.compile(CSV_BODY_PATTERN)

_TIME = {**DATE_FILTER_SCHEMA, "example": "2025-01-31T08:00:00+08:00"}
_TEXT = {"type": "string", "maxLength": 100, "pattern": NO_NUL_PATTERN}
SEND_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "phone": {
            "type": "string",
            "nullable": True,
            "maxLength": 32,
            "pattern": NO_NUL_PATTERN,
            "description": "The number (E.164, or national for mainland China). Digested at once and never "
            "stored. Give `phone` or `phone_hash`.",
        },
        "phone_hash": {
            "type": "string",
            "nullable": True,
            "pattern": "^[0-9a-fA-F]{64}$",
            "description": "Your digest of the number (`phone_hash` in our answers and webhooks), when you "
            "hold only digests.",
        },
        "sent_at": {
            **_TIME,
            "description": "When you sent it (ISO 8601). Without an offset: your tenant's time zone. Later than "
            "now: invalid.",
        },
        "service": {
            **_TEXT,
            "nullable": True,
            "description": "One of your service codes (`GET /api/v1/me`). Unknown: invalid.",
        },
        "category": {**_TEXT, "nullable": True, "description": "e.g. promotion, reminder."},
        "template": {**_TEXT, "nullable": True, "description": "Your template's id or name."},
        "message_id": {
            **_TEXT,
            "nullable": True,
            "description": "Your id of the message: the same id again is a duplicate. Without one, the same "
            "number, time, service, category and template is.",
        },
        "engaged_at": {
            **_TIME,
            "nullable": True,
            "description": "When the person opened, clicked or replied, if you know.",
        },
    },
    "required": ["sent_at"],
}
SEND_RECORDS_SCHEMA: dict[str, Any] = {"type": "array", "maxItems": MAX_ITEMS, "items": SEND_RECORD_SCHEMA}


class RowErrorDoc(serializers.Serializer[Any]):
    row = serializers.IntegerField(
        help_text="JSON: the item's position, from 0. CSV: the line number, from 1."
    )
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class SendLogResultDoc(serializers.Serializer[Any]):
    """received = accepted + duplicates + invalid."""

    received = serializers.IntegerField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Records already on file (or repeated in the list).")
    invalid = serializers.IntegerField()
    violations = serializers.IntegerField(help_text="Accepted records sent after the number's opt-out.")
    errors = RowErrorDoc(many=True)  # type: ignore[assignment]  # a field, popped by DRF's metaclass


class SendLogUploadSerializer(serializers.Serializer[Any]):
    file = UploadField(
        help_text="CSV, UTF-8, a header row naming the columns: phone (or phone_hash), sent_at, and any of "
        "service, category, template, message_id, engaged_at. Up to 10,000,000 rows."
    )


class SendLogImportSerializer(serializers.ModelSerializer[SendLogImport]):
    state = serializers.CharField(source="status")
    url = serializers.SerializerMethodField()
    percent = serializers.SerializerMethodField()
    errors = RowErrorDoc(many=True, help_text="The first 100 errors.")  # type: ignore[assignment]

    class Meta:
        model = SendLogImport
        fields = [
            "id",
            "url",
            "state",
            "original_name",
            "total_rows",
            "rows_done",
            "percent",
            "accepted",
            "duplicates",
            "invalid",
            "violations",
            "errors",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj: SendLogImport) -> str:
        path = reverse("partner-send-log-import", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(serializers.IntegerField(min_value=0, max_value=100))
    def get_percent(self, obj: SendLogImport) -> int:
        if obj.status == SendLogImport.Status.DONE:
            return 100
        return min(99, obj.rows_done * 100 // max(obj.total_rows, 1))


def _submitted_by(request: Request) -> str:
    api_key = request.auth
    assert isinstance(api_key, TenantAPIKey)
    return f"API key {api_key.prefix} ({api_key.name})"


class SendLogListView(PartnerAPIView):
    parser_classes = [LimitedJSONParser, LimitedCSVParser, MultiPartParser]
    throttle_classes = [BulkApiKeyRateThrottle]

    @documented(
        operation_id="send_logs_create",
        summary="Report the messages you sent",
        description=examples.SEND_LOGS_DESCRIPTION
        + upload_limits.limits_note(upload_limits.IMPORT_LIMITS_NOTE),
        request={
            "application/json": SEND_RECORDS_SCHEMA,
            "text/csv": {
                "type": "string",
                "pattern": CSV_BODY_PATTERN,
                "description": "A header row naming phone (or phone_hash) and sent_at, then one record a row.",
            },
            "multipart/form-data": SendLogUploadSerializer,
        },
        parameters=[upload_limits.UPLOAD_RETRY_AFTER],
        responses={
            201: SendLogResultDoc,
            202: SendLogImportSerializer,
            **problems(400, 401, 415, 429),
            **upload_limits.upload_problems(upload_limits.UploadKind.IMPORT),
        },
        examples=examples.SEND_LOGS_EXAMPLES,
        links={
            202: {"TheImport": link("send_log_imports_retrieve", "Its progress.", id="$response.body#/id")}
        },
    )
    def post(self, request: Request) -> Response:
        multipart = (request.content_type or "").startswith("multipart/")
        kind = upload_limits.UploadKind.SCRUB if multipart else upload_limits.UploadKind.IMPORT
        # Size, Content-Length and the key's daily budget, checked before the body is read.
        data = upload_limits.upload_receive(request, tenant=self.tenant, kind=kind)
        if multipart:
            body = SendLogUploadSerializer(data=data)
            body.is_valid(raise_exception=True)
            return self._job(request, upload=body.validated_data["file"])
        if isinstance(data, str) and (request.content_type or "").startswith(LimitedCSVParser.media_type):
            if not _CSV_BODY.match(data):
                raise invalid_field(
                    "body",
                    _("Start the CSV with a header row naming the columns, e.g. %(columns)s.")
                    % {"columns": "phone,sent_at,service,category,template,message_id,engaged_at"},
                )
            return self._job(request, text=data)
        if not isinstance(data, list):
            raise invalid_field("body", _("Send a JSON list of send records, or a CSV."))
        if len(data) > MAX_ITEMS:
            raise TooManyNumbers(
                _("At most %(max)s records per call; this one has %(count)s. Send a CSV for more.")
                % {"max": f"{MAX_ITEMS:,}", "count": f"{len(data):,}"},
                field="body",
            )
        parsed = SendRecordReader(self.tenant).read(enumerate(data))
        errors = [error.as_dict() for error in parsed.errors]
        # A record not in the schema's shape refuses the call (nothing is stored); a value we cannot
        # take (an invalid number, an unknown service) only its record, unless no record is left.
        if parsed.malformed or (data and not parsed.records):
            raise Problem(
                status=400,
                code="invalid",
                detail=_("Some records are not in the documented shape; nothing was stored. See errors.")
                if parsed.malformed
                else _("No record is valid; see errors."),
                errors=[
                    {
                        "field": f"[{e['row']}].{e['field']}" if e["field"] else f"[{e['row']}]",
                        "message": e["message"],
                    }
                    for e in errors
                ],
            )
        counts = send_logs_ingest(tenant=self.tenant, records=parsed.records)
        result = {
            "received": len(data),
            "accepted": counts.accepted,
            "duplicates": counts.duplicates,
            "invalid": parsed.invalid,
            "violations": counts.violations,
            "errors": errors,
        }
        return Response(SendLogResultDoc(result).data, status=201)

    def _job(self, request: Request, **source: Any) -> Response:
        try:
            job = sendlog_import.send_log_import_create(
                tenant=self.tenant, submitted_by=_submitted_by(request), **source
            )
        except InvalidUpload as exc:
            raise invalid_field("file" if "upload" in source else "body", str(exc)) from None
        return Response(SendLogImportSerializer(job, context={"request": request}).data, status=202)


class SendLogImportDetailView(PartnerAPIView):
    @documented(
        operation_id="send_log_imports_retrieve",
        summary="Progress and counts of a send-log import",
        responses={200: SendLogImportSerializer, **problems(401, 404, 429)},
        examples=[examples.SEND_LOG_IMPORT_DONE_EXAMPLE],
    )
    def get(self, request: Request, pk: int) -> Response:
        job = self.scoped(SendLogImport).filter(pk=pk).first()
        if job is None:
            raise Problem(status=404, code="not_found", detail=_("No send-log import with this id."))
        return Response(SendLogImportSerializer(job, context={"request": request}).data)
