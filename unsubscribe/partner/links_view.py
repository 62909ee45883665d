"""Partner API: a subscription's one-click unsubscribe link for marketing emails.

A partner's email sender asks once per subscription (or caches the answer: the
link never expires) and puts the URL in the email's footer and the headers on
the email itself.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from unsubscribe.links import email_unsubscribe_headers, email_unsubscribe_url
from unsubscribe.models import Subscription

from .problems import Problem
from .views import PartnerAPIView, documented, problems

DESCRIPTION = (
    "The link that stops this subscription's service for its number, and the RFC 8058 headers to add to "
    "every marketing email of this subscription (`List-Unsubscribe` and `List-Unsubscribe-Post`; sign them "
    "with DKIM). Mailbox providers POST `List-Unsubscribe=One-Click` to the link; a person who opens it sees "
    "a confirmation page. The number is suppressed for the service at once. The link never expires, so it "
    "may be cached. When the tenant has switched the email channel off, `enabled` is false and `headers` is "
    "empty: do not send the headers then, because mailbox providers require the one-click POST to work "
    "whenever they are present."
)


class EmailUnsubscribeLinkSerializer(serializers.Serializer[Any]):
    subscription = serializers.IntegerField()
    url = serializers.URLField()
    headers = serializers.DictField(child=serializers.CharField())
    enabled = serializers.BooleanField(help_text="Whether the tenant's email channel is on.")


EXAMPLE_URL = "https://optout.example.com/t/acme/email/unsubscribe/eyJ0IjozLCJzIjo0Mn0:Bq0mXw8v2kq1Yt9Zr3Lh5cUe7OaTnJdFsPgWiMyVbC4/"


class EmailUnsubscribeLinkView(PartnerAPIView):
    @documented(
        operation_id="subscriptions_email_unsubscribe_link",
        summary="The one-click unsubscribe link and headers for a subscription's emails",
        description=DESCRIPTION,
        responses={200: EmailUnsubscribeLinkSerializer, **problems(401, 404, 429)},
        examples=[
            OpenApiExample(
                "Email channel on",
                response_only=True,
                value={
                    "subscription": 42,
                    "url": EXAMPLE_URL,
                    "headers": {
                        "List-Unsubscribe": f"<{EXAMPLE_URL}>",
                        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    },
                    "enabled": True,
                },
            ),
            OpenApiExample(
                "Email channel off",
                response_only=True,
                value={"subscription": 42, "url": EXAMPLE_URL, "headers": {}, "enabled": False},
            ),
        ],
    )
    def get(self, request: Request, pk: int) -> Response:
        subscription = self.scoped(Subscription).select_related("service", "tenant").filter(pk=pk).first()
        if subscription is None:
            raise Problem(status=404, code="not_found", detail=_("No subscription with this id."))
        headers = email_unsubscribe_headers(subscription)
        data = {
            "subscription": subscription.pk,
            "url": email_unsubscribe_url(subscription),
            "headers": headers,
            "enabled": bool(headers),
        }
        return Response(EmailUnsubscribeLinkSerializer(data).data)
