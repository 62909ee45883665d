"""The project's URLs plus `/bench/bare`: a bare Django JsonResponse view behind the same
middleware on the same server, the baseline the check path is measured against."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"phone": request.GET.get("phone", ""), "valid": True, "suppressed": False})


urlpatterns = [path("bench/bare", bare), path("", include("lanzuan.urls"))]
