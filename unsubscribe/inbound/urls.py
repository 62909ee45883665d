from django.urls import path

from . import views

app_name = "inbound"

urlpatterns = [
    path("hooks/sms/<slug:tenant_slug>/<str:provider>/", views.sms_hook, name="sms-hook"),
    # One segment more than a tenant's URL: the two shapes can never be confused.
    path(
        "hooks/sms/platform/<slug:account>/<str:provider>/", views.platform_sms_hook, name="platform-sms-hook"
    ),
]
