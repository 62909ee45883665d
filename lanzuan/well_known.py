"""`/.well-known/lanzuan-keys.json`: the platform's public signing keys, at a stable URL.

Anyone who holds a checkpoint or a receipt checks its signature against the key its `kid` names,
without trusting the provider's database (README, "Audit record").
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from . import signing_keys


@require_safe
def lanzuan_keys(request: HttpRequest) -> JsonResponse:
    response = JsonResponse({"keys": signing_keys.public_keys()})
    # Public by design: a verifier on another origin (a regulator's page, a script) may fetch it.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=300"
    return response
