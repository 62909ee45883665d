"""Partner API v1: every app registers its endpoints here."""

from django.urls import path

from tenants.api import WhoAmIView

urlpatterns = [
    path("me", WhoAmIView.as_view(), name="api-me"),
]
