from django.urls import path

from . import views

app_name = "voice"

urlpatterns = [
    path("hooks/voice/<slug:tenant_slug>/twilio/", views.twilio_hook, name="twilio-hook"),
    path(
        "hooks/voice/<slug:tenant_slug>/twilio/status/", views.twilio_status_hook, name="twilio-status-hook"
    ),
    path("hooks/voice/<slug:tenant_slug>/generic/", views.generic_hook, name="generic-hook"),
]
