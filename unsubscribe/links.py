"""Signed links: to a request's status page (in receipts and confirmations), and the
one-click unsubscribe link of marketing emails (RFC 8058).

An email link belongs to one subscription (a number and one of the tenant's
services); the number never appears in it. Senders put the link in each email's
footer and in the `List-Unsubscribe` / `List-Unsubscribe-Post` headers
(`email_unsubscribe_headers`); what the link does is the opt-out pages' business
(unsubscribe/optout/email_links.py).

The email token is signed (django.core.signing, its own salt) but has no expiry, on
purpose: an email stays in an inbox for years and its unsubscribe link must keep
working as long as the mail can be read (mailbox bulk-sender rules; CAN-SPAM asks
for at least 30 days after sending). All a token can do is stop one service's
marketing to its own number, the direction the law favours, so a forwarded email
lets its reader do nothing worse than opt the owner out. Rotating SECRET_KEY
invalidates old links unless the old key stays in SECRET_KEY_FALLBACKS.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from tenants.models import Tenant

from .models import RequestChannel, Subscription, UnsubscribeRequest
from .selectors import channel_enabled

STATUS_SALT = "lanzuan.status-link"
STATUS_MAX_AGE = 60 * 60 * 24 * 400  # a person may come back to check for a long time

EMAIL_SALT = "lanzuan.email-unsubscribe"
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


# --- status page links --------------------------------------------------------------------------


def status_token(request: UnsubscribeRequest) -> str:
    return signing.dumps({"r": request.reference, "t": request.tenant_id}, salt=STATUS_SALT, compress=True)


def reference_from_token(token: str, tenant_id: int) -> str | None:
    try:
        data = signing.loads(token, salt=STATUS_SALT, max_age=STATUS_MAX_AGE)
    except signing.BadSignature:
        return None
    if data.get("t") != tenant_id:
        return None
    return str(data.get("r"))


def status_url(request: UnsubscribeRequest, *, absolute: bool = True) -> str:
    path = reverse("unsubscribe-status", args=[request.tenant.slug]) + "?token=" + status_token(request)
    return settings.PUBLIC_BASE_URL + path if absolute else path


# --- email one-click links --------------------------------------------------------------------


def email_unsubscribe_token(subscription: Subscription) -> str:
    """Without a timestamp (a plain Signer, not signing.dumps): no expiry to check, and
    the same subscription always gets the same link, so senders may cache it."""
    return signing.Signer(salt=EMAIL_SALT).sign_object(
        {"t": subscription.tenant_id, "s": subscription.pk}, compress=True
    )


def subscription_for_token(*, tenant: Tenant, token: str) -> Subscription | None:
    """The tenant's subscription a token was made for; None for a tampered token, a
    token of another tenant, or a subscription that no longer exists."""
    try:
        data = signing.Signer(salt=EMAIL_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    tenant_id, subscription_id = data.get("t"), data.get("s")
    # type() rather than isinstance(): True is an int too.
    if type(tenant_id) is not int or type(subscription_id) is not int or tenant_id != tenant.pk:
        return None
    return (
        Subscription.objects.for_tenant(tenant)
        .select_related("service", "tenant")
        .filter(pk=subscription_id)
        .first()
    )


def email_unsubscribe_path(subscription: Subscription) -> str:
    return reverse(
        "optout-email-unsubscribe", args=[subscription.tenant.slug, email_unsubscribe_token(subscription)]
    )


def email_unsubscribe_url(subscription: Subscription) -> str:
    """Absolute: it goes into emails. RFC 8058 needs https, so PUBLIC_BASE_URL must be
    https in production or mailbox providers ignore the header."""
    return settings.PUBLIC_BASE_URL + email_unsubscribe_path(subscription)


def email_unsubscribe_headers(subscription: Subscription) -> dict[str, str]:
    """The headers a sender adds to every marketing email for this subscription
    (they must be covered by the email's DKIM signature).

    Empty when the tenant switched the email channel off: mailbox providers
    require a one-click POST to work whenever the header is sent, and with the
    channel off it would be refused."""
    if not channel_enabled(tenant=subscription.tenant, channel=RequestChannel.EMAIL):
        return {}
    return {
        "List-Unsubscribe": f"<{email_unsubscribe_url(subscription)}>",
        "List-Unsubscribe-Post": f"{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}",
    }


def is_one_click_body(data: dict[str, list[str]]) -> bool:
    """RFC 8058 §3.1: the POST body contains List-Unsubscribe=One-Click. Other fields
    are tolerated: the token, not the body, is what authorises the opt-out."""
    return data.get(ONE_CLICK_FIELD) == [ONE_CLICK_VALUE]
