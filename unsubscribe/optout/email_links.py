"""One-click unsubscribe links for marketing emails (RFC 8058).

A link belongs to one subscription (a number and one of the tenant's services);
the number never appears in it. Senders put the link in each email's footer and
in the `List-Unsubscribe` / `List-Unsubscribe-Post` headers
(`email_unsubscribe_headers`); mailbox providers then POST
`List-Unsubscribe=One-Click` to it without cookies, and a person who opens it
sees a confirmation page (GET changes nothing: mail scanners follow links).

The token is signed (django.core.signing, its own salt) but has no expiry, on
purpose: an email stays in an inbox for years and its unsubscribe link must keep
working as long as the mail can be read (mailbox bulk-sender rules; CAN-SPAM asks
for at least 30 days after sending). All a token can do is stop one service's
marketing to its own number, the direction the law favours, so a forwarded email
lets its reader do nothing worse than opt the owner out. Rotating SECRET_KEY
invalidates old links unless the old key stays in SECRET_KEY_FALLBACKS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.translation import gettext as _

from tenants.models import Tenant
from unsubscribe import selectors as core
from unsubscribe.errors import UnsubscribeError
from unsubscribe.models import (
    SCOPE_ALL,
    RequestChannel,
    Subscription,
    SuppressionEvent,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.suppressions import selectors as suppression_selectors
from unsubscribe.suppressions.selectors import SuppressionStatus

logger = logging.getLogger(__name__)

SALT = "lanzuan.email-unsubscribe"
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


class EmailLinkUnusable(UnsubscribeError):
    """The subscription's number was erased and is not suppressed: nothing left to act on."""

    code = "email_link_unusable"


# --- tokens, URLs and headers ---------------------------------------------------------------


def email_unsubscribe_token(subscription: Subscription) -> str:
    """Without a timestamp (a plain Signer, not signing.dumps): no expiry to check, and
    the same subscription always gets the same link, so senders may cache it."""
    return signing.Signer(salt=SALT).sign_object(
        {"t": subscription.tenant_id, "s": subscription.pk}, compress=True
    )


def subscription_for_token(*, tenant: Tenant, token: str) -> Subscription | None:
    """The tenant's subscription a token was made for; None for a tampered token, a
    token of another tenant, or a subscription that no longer exists."""
    try:
        data = signing.Signer(salt=SALT).unsign_object(token)
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
    if not core.channel_enabled(tenant=subscription.tenant, channel=RequestChannel.EMAIL):
        return {}
    return {
        "List-Unsubscribe": f"<{email_unsubscribe_url(subscription)}>",
        "List-Unsubscribe-Post": f"{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}",
    }


def is_one_click_body(data: dict[str, list[str]]) -> bool:
    """RFC 8058 §3.1: the POST body contains List-Unsubscribe=One-Click. Other fields
    are tolerated: the token, not the body, is what authorises the opt-out."""
    return data.get(ONE_CLICK_FIELD) == [ONE_CLICK_VALUE]


# --- what the link can still do -------------------------------------------------------------


def _idempotency_key(subscription: Subscription) -> str:
    """One request per link, until the person re-subscribes: a later click must then
    suppress the number again, not return the request whose suppression was lifted.
    The newest lift of this scope makes a new key; it is the same for every click
    until the next lift, so concurrent clicks still file once."""
    lifted = (
        SuppressionEvent.objects.for_tenant(subscription.tenant)
        .filter(
            phone_hash=subscription.phone_hash,
            action=SuppressionEvent.Action.LIFTED,
            scope__in=[SCOPE_ALL, subscription.service.code],
        )
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    base = f"email-{subscription.pk}"
    return base if lifted is None else f"{base}-r{lifted}"


@dataclass(frozen=True)
class EmailLinkStatus:
    request: UnsubscribeRequest | None  # filed through this link, and still in force
    suppression: SuppressionStatus  # of the number for the subscription's service
    enabled: bool  # the tenant's email channel

    @property
    def already_stopped(self) -> bool:
        return self.request is None and self.suppression.suppressed


def email_link_status(*, subscription: Subscription) -> EmailLinkStatus:
    tenant = subscription.tenant
    return EmailLinkStatus(
        request=UnsubscribeRequest.objects.for_tenant(tenant)
        .filter(idempotency_key=_idempotency_key(subscription))
        .first(),
        suppression=suppression_selectors.suppression_status_for_hash(
            tenant=tenant, phone_hash=subscription.phone_hash, service_code=subscription.service.code
        ),
        enabled=core.channel_enabled(tenant=tenant, channel=RequestChannel.EMAIL),
    )


# --- the opt-out ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailOptOut:
    request: UnsubscribeRequest | None  # None: the number was already suppressed by other means
    created: bool


def email_unsubscribe(*, subscription: Subscription, via: str, language: str | None = None) -> EmailOptOut:
    """Stop the subscription's service for its number, once per link.

    `via` is "one-click" (the mailbox provider's RFC 8058 POST) or "page" (the
    confirmation page's button); recorded as who filed it. A repeat returns the
    request this link filed; a number already suppressed for the service files
    nothing. Raises ChannelDisabled, or EmailLinkUnusable when the number was
    erased without being suppressed."""
    status = email_link_status(subscription=subscription)
    if status.request is not None:
        return EmailOptOut(status.request, created=False)
    if status.suppression.suppressed:
        return EmailOptOut(None, created=False)
    if not subscription.phone:
        raise EmailLinkUnusable(
            _("We no longer hold the number this link was made for, so it cannot be used any more.")
        )
    # The page and the mailbox provider may race: the same key and evidence make
    # the second one return the first one's request.
    filed = unsubscribe_request_create(
        tenant=subscription.tenant,
        phone=subscription.phone,
        channel=RequestChannel.EMAIL,
        verification_method=VerificationMethod.SIGNED_TOKEN,
        verification_evidence={"subscription_id": subscription.pk},
        services=[subscription.service.code],
        language=language,
        idempotency_key=_idempotency_key(subscription),
        filed_by=f"the person, by the email link ({via})",
    )
    return EmailOptOut(filed.request, created=filed.created)
