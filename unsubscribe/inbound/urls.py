from django.urls import path

from . import views

app_name = "inbound"

urlpatterns = [
    path("hooks/sms/<slug:tenant_slug>/<str:provider>/", views.sms_hook, name="sms-hook"),
]
