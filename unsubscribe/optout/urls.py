"""Public pages. Included at the site root before unsubscribe.urls, so these win."""

from django.urls import path

from . import email_views, verify_views, views

urlpatterns = [
    path("t/<slug:slug>/", views.tenant_home, name="optout-tenant-home"),
    path("t/<slug:slug>/unsubscribe/", views.unsubscribe_start, name="unsubscribe-start"),
    path("t/<slug:slug>/unsubscribe/code/", views.unsubscribe_code, name="optout-code"),
    path("t/<slug:slug>/unsubscribe/choose/", views.unsubscribe_choose, name="optout-choose"),
    path("t/<slug:slug>/unsubscribe/receipt/", views.unsubscribe_receipt, name="optout-receipt"),
    path("t/<slug:slug>/status/", views.request_status, name="unsubscribe-status"),
    path("t/<slug:slug>/status/receipt/", views.signed_receipt_download, name="optout-signed-receipt"),
    path("verify/", verify_views.verify, name="verify"),
    path("hub/", views.hub_start, name="optout-hub"),
    path("hub/code/", views.hub_code, name="optout-hub-code"),
    path("hub/choose/", views.hub_choose, name="optout-hub-choose"),
    path("hub/receipt/", views.hub_receipt, name="optout-hub-receipt"),
]

# The one-click unsubscribe link of marketing emails (RFC 8058): see email_views.py.
urlpatterns += [
    path(
        "t/<slug:slug>/email/unsubscribe/<str:token>/",
        email_views.email_unsubscribe,
        name="optout-email-unsubscribe",
    ),
    path(
        "t/<slug:slug>/email/unsubscribe/<str:token>/confirm/",
        email_views.email_unsubscribe_confirm,
        name="optout-email-unsubscribe-confirm",
    ),
]
