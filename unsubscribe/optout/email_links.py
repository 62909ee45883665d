"""What a marketing email's one-click unsubscribe link (RFC 8058) does: its status
and the opt-out it files. The link itself (token, URL, headers) is made in the core,
unsubscribe/links.py, where the partner API reads it too.

Mailbox providers POST `List-Unsubscribe=One-Click` to the link without cookies, and
a person who opens it sees a confirmation page (GET changes nothing: mail scanners
follow links).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils.translation import gettext as _

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


class EmailLinkUnusable(UnsubscribeError):
    """The subscription's number was erased and is not suppressed: nothing left to act on."""

    code = "email_link_unusable"


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
