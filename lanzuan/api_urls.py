"""Partner API v1: every app registers its endpoints here."""

from django.urls import include, path

from tenants.api import WhoAmIView

urlpatterns = [
    path("me", WhoAmIView.as_view(), name="api-me"),
    path("", include("unsubscribe.partner.urls")),
]
