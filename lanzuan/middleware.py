"""Middleware every app relies on.

- ContentSecurityPolicyMiddleware: Django 5.2 has no Content-Security-Policy support (it
  arrives in 6.0), so this sets the header from settings.LANZUAN_CSP (the LANZUAN_CSP
  environment variable; see README, "Production settings"). An empty policy sends no header.
- TimeZoneMiddleware: every request starts in the platform's zone (settings.TIME_ZONE); a
  person's page of one tenant switches to that tenant's zone (optout.views.active_tenant), so
  times and due dates read as the tenant's clock says. Reset after the request: Django keeps the
  active zone per thread, and a server thread's next request must not inherit it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.LANZUAN_CSP
        # a view that sets its own policy (a stricter one) keeps it
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class TimeZoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
