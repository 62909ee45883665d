"""Partner API v1 routes, included under /api/v1/ by lanzuan.api_urls."""

from django.urls import path

from . import audit_view, consents_view, links_view, sendlogs_view, views

urlpatterns = [
    path("unsubscribe-requests", views.UnsubscribeRequestListView.as_view(), name="partner-requests"),
    path(
        "unsubscribe-requests/<str:reference>",
        views.UnsubscribeRequestDetailView.as_view(),
        name="partner-request-detail",
    ),
    path(
        "unsubscribe-requests/<str:reference>/proof",
        views.ProofPackView.as_view(),
        name="partner-request-proof",
    ),
    path("suppressions/check", views.SuppressionCheckView.as_view(), name="partner-suppressions-check"),
    path("scrub-jobs", views.ScrubJobListView.as_view(), name="partner-scrub-jobs"),
    path("scrub-jobs/<int:pk>", views.ScrubJobDetailView.as_view(), name="partner-scrub-job-detail"),
    path("scrub-jobs/<int:pk>/result", views.ScrubJobResultView.as_view(), name="partner-scrub-job-result"),
    path("subscriptions/import", views.SubscriptionImportView.as_view(), name="partner-subscriptions-import"),
    path("channels", views.ChannelsView.as_view(), name="partner-channels"),
    path("consents", consents_view.ConsentListView.as_view(), name="partner-consents"),
    path("number-events", consents_view.NumberEventListView.as_view(), name="partner-number-events"),
    path("send-logs", sendlogs_view.SendLogListView.as_view(), name="partner-send-logs"),
    path(
        "send-logs/imports/<int:pk>",
        sendlogs_view.SendLogImportDetailView.as_view(),
        name="partner-send-log-import",
    ),
    path("audit/checkpoints", audit_view.AuditCheckpointListView.as_view(), name="partner-audit-checkpoints"),
    path("webhooks", views.WebhookListView.as_view(), name="partner-webhooks"),
    path("webhooks/<int:pk>", views.WebhookDetailView.as_view(), name="partner-webhook-detail"),
    path(
        "subscriptions/<int:pk>/email-unsubscribe-link",
        links_view.EmailUnsubscribeLinkView.as_view(),
        name="partner-subscription-email-link",
    ),
]
