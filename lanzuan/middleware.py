"""Response headers Django does not set itself.

Django 5.2 has no Content-Security-Policy support (it arrives in 6.0), so this sets
the header from settings.LANZUAN_CSP (the LANZUAN_CSP environment variable; see
README, "Production settings"). An empty policy sends no header.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


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
