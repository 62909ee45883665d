"""The base view that scopes every partner endpoint to the API key's tenant."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import db_scope
from .models import Tenant, TenantAPIKey
from .scoping import TenantOwnedModel


class _WithoutFormatOverride:
    URL_FORMAT_OVERRIDE = None


class ApiContentNegotiation(DefaultContentNegotiation):
    """DRF's, without its `?format=` override: not a parameter of this API, and DRF answered
    an unknown value with a 404 on every endpoint."""

    settings = _WithoutFormatOverride()  # type: ignore[assignment]  # the one setting it reads


class TenantScopedAPIView(APIView):
    """Base for every partner endpoint: `self.tenant` is the key's tenant and
    `self.scoped()` (the model's `objects.for_tenant(self.tenant)`) the only way to
    read tenant-owned rows. Subclasses may not override get_queryset, so no endpoint
    can widen its scope by accident."""

    model: ClassVar[type[TenantOwnedModel] | None] = None
    content_negotiation_class: type[BaseContentNegotiation] = ApiContentNegotiation

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not override get_queryset; use scoped()")

    @property
    def tenant(self) -> Tenant:
        auth = self.request.auth
        assert isinstance(auth, TenantAPIKey)
        return auth.tenant

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The database sees no tenant's rows until the key is known (initial), then only its tenant's.
        with db_scope.tenants_scope([]):
            return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        db_scope.enter_tenants([self.tenant.pk])  # reset when dispatch leaves its scope

    def scoped(self, model: type[TenantOwnedModel] | None = None) -> models.QuerySet[Any]:
        model = model or self.model
        if model is None:
            raise TypeError(f"{type(self).__name__}.model is not set")
        if not issubclass(model, TenantOwnedModel):
            raise TypeError(f"{model._meta.label} is not tenant-owned")
        return model.objects.for_tenant(self.tenant)

    def get_queryset(self) -> models.QuerySet[Any]:
        return self.scoped()


# Every API error is a problem document (RFC 9457), described once by the partner API's
# serializer (unsubscribe.partner.problems, a layer above) as the component "Problem".
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def _problem(description: str) -> OpenApiResponse:
    return OpenApiResponse(PROBLEM_SCHEMA, description=description)


class WhoAmIView(TenantScopedAPIView):
    """The tenant this key belongs to: a quick check that a key works."""

    @extend_schema(
        summary="Which tenant this API key belongs to",
        parameters=[
            OpenApiParameter(
                "Retry-After",
                int,
                OpenApiParameter.HEADER,
                response=[429],
                description="Seconds to wait before this API key may call again.",
            )
        ],
        responses={
            200: inline_serializer(
                "WhoAmI",
                {
                    "tenant": serializers.CharField(),
                    "name": serializers.CharField(),
                    "key": serializers.CharField(),
                    "time_zone": serializers.CharField(
                        help_text="Bare dates in filters are read in this zone."
                    ),
                },
            ),
            (401, "application/problem+json"): _problem("No API key, or an unknown, revoked or expired one."),
            (429, "application/problem+json"): _problem(
                "Rate limit of this API key exceeded; wait for Retry-After seconds."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        tenant = self.tenant
        key = request.auth
        assert isinstance(key, TenantAPIKey)
        return Response(
            {"tenant": tenant.slug, "name": tenant.name, "key": key.name, "time_zone": tenant.time_zone}
        )
