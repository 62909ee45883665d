"""`GET /api/v1/audit/checkpoints`: the signed checkpoints of the key's tenant's audit record.

Each is the chain head at one moment (`seq`, `hash`) signed with the platform's Ed25519 key
named by `kid` (published at `/.well-known/lanzuan-keys.json`). The signature covers the
canonical JSON of `{"created_at", "hash", "seq", "tenant"}` (keys sorted, no spaces, UTF-8, the
time in UTC ISO 8601 as given here): a partner or a regulator who keeps a checkpoint can later
tell whether the record before it was rewritten.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from unsubscribe.audit.canonical import plain
from unsubscribe.models import AuditCheckpoint

from .views import PartnerAPIView, RequestCursorPagination, documented, problems


class CheckpointSerializer(serializers.Serializer[AuditCheckpoint]):
    tenant = serializers.CharField(source="tenant_slug", help_text="The tenant's slug, as signed.")
    seq = serializers.IntegerField(help_text="Position of the chain head that was signed.")
    hash = serializers.CharField(help_text="SHA-256 (hex) of the entry at `seq`: the chain head.")
    created_at = serializers.SerializerMethodField(help_text="When it was signed (UTC), as signed.")
    reason = serializers.CharField(help_text="`periodic`, or `purge` (signed at a retention purge).")
    kid = serializers.CharField(source="key_id", help_text="Id of the signing key (see the keys URL).")
    alg = serializers.SerializerMethodField(help_text="Always `Ed25519`.")
    signature = serializers.CharField(help_text="Base64 of the Ed25519 signature.")

    def get_created_at(self, obj: AuditCheckpoint) -> str:
        created: str = plain(obj.created_at)
        return created

    def get_alg(self, obj: AuditCheckpoint) -> str:
        return "Ed25519"


class CheckpointPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="The next page, or null at the end.")
    previous = serializers.URLField(allow_null=True)
    results = CheckpointSerializer(many=True)


class CheckpointCursorPagination(RequestCursorPagination):
    ordering = "-created_at"


CHECKPOINT_EXAMPLE = {
    "tenant": "acme",
    "seq": 1042,
    "hash": "9f2c4b1e7d0a5c3f8e6b2d4a1c9e7f5b3d1a8c6e4f2b0d9c7a5e3f1b8d6c4a2e",
    "created_at": "2026-12-07T10:00:00.123456+00:00",
    "reason": "periodic",
    "kid": "3f9c0e2b7a1d4c58",
    "alg": "Ed25519",
    "signature": "bW9jayBzaWduYXR1cmUgb2YgNjQgYnl0ZXMgZm9yIHRoZSBleGFtcGxlIG9ubHkgLi4uLi4uLi4uLi4uLi4uLg==",
}


class AuditCheckpointListView(PartnerAPIView):
    @documented(
        operation_id="audit_checkpoints_list",
        summary="List the signed checkpoints of your audit record",
        description=__doc__,
        parameters=[
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
        responses={200: CheckpointPageSerializer, **problems(400, 401, 429)},
        examples=[
            OpenApiExample(
                "A page",
                response_only=True,
                value={"next": None, "previous": None, "results": [CHECKPOINT_EXAMPLE]},
            )
        ],
    )
    def get(self, request: Request) -> Response:
        paginator = CheckpointCursorPagination()
        page = paginator.paginate_queryset(self.scoped(AuditCheckpoint), request, view=self) or []
        return paginator.get_paginated_response(CheckpointSerializer(page, many=True).data)  # type: ignore[arg-type]
