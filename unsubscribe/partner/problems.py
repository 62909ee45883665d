"""Errors as problem details (RFC 9457, `application/problem+json`).

Every error of the partner API has the same shape:

    {"type": "urn:lanzuan:problem:invalid_phone", "title": "Invalid phone number",
     "status": 400, "detail": "That is not a valid phone number.", "code": "invalid_phone",
     "instance": "/api/v1/unsubscribe-requests",
     "errors": [{"field": "phone", "message": "That is not a valid phone number."}]}

`code` (also the last part of `type`) is stable and meant for programs; `title`
and `detail` are for people and follow the request's language. Installed with

    REST_FRAMEWORK["EXCEPTION_HANDLER"] = "unsubscribe.partner.problems.problem_exception_handler"

and used by the partner views in any case (`PartnerAPIView.get_exception_handler`).
Errors that never reach a DRF view (an unknown path under /api/, a bug, a failure
in a middleware) are turned into problem details by `ApiProblemMiddleware`, also
with DEBUG on: a partner's program never has to read an HTML page.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Iterator
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils import translation
from django.utils.encoding import force_str
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lanzuan.phones import InvalidPhoneNumber
from unsubscribe.errors import (
    ChannelDisabled,
    IdempotencyConflict,
    UnknownServices,
    UnsubscribeError,
)

from .errors import PartnerError

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:lanzuan:problem:"


class Problem(exceptions.APIException):
    """An error with a status, a stable code and field-level errors, raised by views.
    `wait`, when set, is sent as Retry-After (DRF's handler reads it, as for a 429)."""

    wait: int | None = None

    def __init__(
        self,
        *,
        status: int,
        code: str,
        detail: str,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.problem_code = code
        self.title = title
        self.errors = errors or []


def field_error(field: str | None, message: str) -> dict[str, Any]:
    return {"field": field, "message": message}


def invalid_field(field: str, message: str) -> Problem:
    """A 400 `invalid` problem about one field (or "body")."""
    return Problem(status=400, code="invalid", detail=message, errors=[field_error(field, message)])


def _domain_problem(exc: Exception) -> exceptions.APIException | None:
    """The core's domain errors, and Django's, as problems: the message is safe to show."""
    problem = _core_problem(exc)
    return problem if problem is not None else _django_problem(exc)


def _core_problem(exc: Exception) -> Problem | None:
    if isinstance(exc, InvalidPhoneNumber):
        message = str(exc)
        return Problem(
            status=400,
            code="invalid_phone",
            title=_("Invalid phone number"),
            detail=message,
            errors=[field_error("phone", message)],
        )
    if isinstance(exc, UnknownServices):
        return Problem(
            status=400,
            code="unknown_services",
            title=_("Unknown service"),
            detail=exc.message,
            errors=[field_error(getattr(exc, "field", "scope"), exc.message)],
        )
    if isinstance(exc, IdempotencyConflict):
        return Problem(
            status=422,
            code="idempotency_conflict",
            title=_("Idempotency-Key reused"),
            detail=exc.message,
            errors=[field_error("Idempotency-Key", exc.message)],
        )
    if isinstance(exc, ChannelDisabled):
        return Problem(
            status=403,
            code="channel_disabled",
            title=_("Channel disabled"),
            detail=exc.message,
            errors=[field_error("channel", exc.message)],
        )
    if isinstance(exc, PartnerError):
        problem = Problem(
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.message,
            errors=[field_error(exc.field, exc.message)] if exc.field else [],
        )
        problem.wait = getattr(exc, "retry_after", None)
        return problem
    if isinstance(exc, UnsubscribeError):
        return Problem(status=400, code=exc.code, title=_("Request refused"), detail=exc.message)
    return None


def _django_problem(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(detail=serializers.as_serializer_error(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return None


def _flatten(detail: Any, path: str = "") -> Iterator[dict[str, Any]]:
    """DRF's nested error detail → [{"field": "verification.agent_id", "message": ...}]."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                yield from _flatten(value, path)
            elif isinstance(key, int):  # a ListField's errors, by position
                yield from _flatten(value, f"{path}[{key}]")
            else:
                yield from _flatten(value, f"{path}.{key}" if path else str(key))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            for item in detail:
                yield field_error(path or None, force_str(item))
        else:
            for index, item in enumerate(detail):
                if item:
                    yield from _flatten(item, f"{path}[{index}]")
    else:
        yield field_error(path or None, force_str(detail))


_TITLES = {
    400: lambda: _("Invalid request"),
    401: lambda: _("Not authenticated"),
    403: lambda: _("Forbidden"),
    404: lambda: _("Not found"),
    405: lambda: _("Method not allowed"),
    406: lambda: _("Not acceptable"),
    409: lambda: _("Conflict"),
    411: lambda: _("Length required"),
    413: lambda: _("Too large"),
    415: lambda: _("Unsupported media type"),
    422: lambda: _("Unprocessable request"),
    429: lambda: _("Too many requests"),
    500: lambda: _("Server error"),
    502: lambda: _("Server error"),
    503: lambda: _("Service unavailable"),
}


def _title(status: int) -> str:
    make = _TITLES.get(status)
    if make is not None:
        return make()
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return _("Error")


def problem_body(exc: exceptions.APIException, status: int, instance: str | None = None) -> dict[str, Any]:
    if isinstance(exc, Problem):
        code, title, detail, errors = exc.problem_code, exc.title, force_str(exc.detail), exc.errors
    elif isinstance(exc, exceptions.ValidationError):
        code, title = "invalid", _("Invalid request")
        errors = list(_flatten(exc.detail))
        detail = errors[0]["message"] if len(errors) == 1 else _("Some fields are invalid; see errors.")
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        title, detail, errors = None, force_str(exc.detail), []
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + str(code),
        "title": title or _title(status),
        "status": status,
        "detail": detail,
        "code": str(code),
        "errors": errors,
    }
    if instance:
        body["instance"] = instance
    return body


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: domain errors and DRF's own errors as problem details.
    Anything else is a bug and is left to Django (a 500 and a logged traceback),
    whose answer ApiProblemMiddleware turns into a problem document."""
    translated = _domain_problem(exc)
    if translated is not None:
        exc = translated
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return None
    request = context.get("request")
    response.data = problem_body(exc, response.status_code, getattr(request, "path", None))
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


# --- anything else under /api/ -------------------------------------------------------

API_PREFIX = "/api/"
# Headers of the original answer that still mean something on the problem document.
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")

_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}

_DETAILS = {
    400: lambda: _("The request could not be read."),
    403: lambda: _("You may not do this."),
    404: lambda: _("There is nothing at this address. See /api/docs/ for the endpoints."),
    405: lambda: _("This method is not allowed here."),
    413: lambda: _("The request is too large."),
    415: lambda: _("This content type is not accepted here."),
}


def _generic_problem(status: int, instance: str) -> dict[str, Any]:
    code = _CODES.get(status, "server_error" if status >= 500 else "error")
    detail = _DETAILS.get(status)
    return {
        "type": TYPE_PREFIX + code,
        "title": _title(status),
        "status": status,
        "detail": detail()
        if detail
        else (
            _("Something went wrong on our side; it has been logged. Please try again later.")
            if status >= 500
            else _title(status)
        ),
        "code": code,
        "instance": instance,
        "errors": [],
    }


class ApiProblemMiddleware:
    """Every error answer under /api/ is application/problem+json. DRF views answer
    so themselves; this rewrites the rest (Django's 404 for an unknown path, the 500
    of an unexpected exception, DEBUG's technical pages included). Installed first
    in MIDDLEWARE, so it also covers errors raised in the other middleware. The
    traceback of a 500 is still logged by Django before the answer is replaced."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path_info.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            return response
        with translation.override(translation.get_language_from_request(request)):
            body = _generic_problem(response.status_code, request.path)
        problem: HttpResponse = JsonResponse(
            body, status=response.status_code, content_type=PROBLEM_CONTENT_TYPE
        )
        for header in _KEPT_HEADERS:
            if header in response:
                problem[header] = response[header]
        return problem


# --- OpenAPI -------------------------------------------------------------------


class FieldErrorSerializer(serializers.Serializer[Any]):
    field = serializers.CharField(
        allow_null=True, help_text="The offending field, or null for the whole body."
    )
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer[Any]):
    """RFC 9457 problem details, served as application/problem+json."""

    type = serializers.CharField(help_text="urn:lanzuan:problem:<code>")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. invalid_phone.")
    instance = serializers.CharField(required=False)
    errors = FieldErrorSerializer(many=True)  # type: ignore[assignment]  # a field, popped by DRF's metaclass
