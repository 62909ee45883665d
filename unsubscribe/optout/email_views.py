"""The one-click unsubscribe link of marketing emails (see unsubscribe/links.py and email_links.py).

Two URLs per link:
- `…/email/unsubscribe/<token>/`: GET shows what the link would do (or what it
  did) and never changes anything, because mail scanners follow links. POST is
  RFC 8058's one-click from the mailbox provider: no cookies, so no CSRF token;
  the view is csrf_exempt and acts only on a `List-Unsubscribe=One-Click` body.
- `…/email/unsubscribe/<token>/confirm/`: the confirmation page's button, with
  Django's CSRF protection as usual.

Keeping the page's form on its own URL leaves the exempt view able to do just one
thing, and the form to the CSRF middleware unchanged (no hand-run middleware).
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from tenants.models import Tenant
from unsubscribe import links
from unsubscribe.channels import ways_to_unsubscribe
from unsubscribe.errors import ChannelDisabled
from unsubscribe.models import RequestChannel, Subscription, UnsubscribeRequest

from . import email_links, selectors
from .views import active_tenant, page_language, receipt_context, render_page


def _subscription(slug: str, token: str) -> tuple[Tenant, Subscription | None]:
    tenant = active_tenant(slug)
    return tenant, links.subscription_for_token(tenant=tenant, token=token)


def _disabled_message(tenant: Tenant) -> str:
    return _("%(tenant)s does not offer unsubscribing by %(channel)s.") % {
        "tenant": tenant.name,
        "channel": RequestChannel.EMAIL.label,
    }


def _invalid_page(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    return render_page(request, "email_invalid.html", tenant, {}, status=400)


def _receipt_page(request: HttpRequest, tenant: Tenant, found: UnsubscribeRequest) -> HttpResponse:
    return render_page(request, "receipt.html", tenant, receipt_context(tenant, found))


def _already_page(
    request: HttpRequest, tenant: Tenant, subscription: Subscription, status: email_links.EmailLinkStatus
) -> HttpResponse:
    context = {"subscription": subscription, "since": status.suppression.since}
    return render_page(request, "email_already.html", tenant, context)


def _text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")


@never_cache
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def email_unsubscribe(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    tenant, subscription = _subscription(slug, token)
    if request.method == "POST":
        return _one_click(request, tenant, subscription)
    if subscription is None:
        return _invalid_page(request, tenant)
    status = email_links.email_link_status(subscription=subscription)
    if status.request is not None:
        return _receipt_page(request, tenant, status.request)
    if status.already_stopped:
        return _already_page(request, tenant, subscription, status)
    if not status.enabled:
        return render_page(request, "email_disabled.html", tenant, {"message": _disabled_message(tenant)})
    if not subscription.phone:
        return render_page(request, "email_invalid.html", tenant, {"unusable": True}, status=410)
    context: dict[str, Any] = {
        "subscription": subscription,
        "service": subscription.service,
        "facts": selectors.terms_facts(tenant=tenant)[1:],
        "confirm_url": reverse("optout-email-unsubscribe-confirm", args=[tenant.slug, token]),
    }
    return render_page(request, "email_confirm.html", tenant, context)


def _one_click(request: HttpRequest, tenant: Tenant, subscription: Subscription | None) -> HttpResponse:
    """RFC 8058: the mailbox provider's POST. Short plain-text answers; nobody reads them
    but the provider, which only looks at the status."""
    if not links.is_one_click_body(dict(request.POST.lists())):
        return _text(
            _("This address accepts one-click unsubscribe requests only. Open the link to unsubscribe."),
            status=400,
        )
    if subscription is None:
        return _text(_("This link is not valid"), status=400)
    try:
        done = email_links.email_unsubscribe(
            subscription=subscription, via="one-click", language=page_language()
        )
    except ChannelDisabled as exc:
        ways = ways_to_unsubscribe(tenant=tenant, language=page_language())
        lines = [exc.message, *(f"{way.title}: {way.instruction}" for way in ways)]
        return _text("\n".join(lines), status=403)
    except email_links.EmailLinkUnusable as exc:
        return _text(exc.message, status=410)
    if done.request is None:
        return _text(_("You are already unsubscribed"))
    return _text(
        _("You are unsubscribed. Your reference: %(reference)s") % {"reference": done.request.reference}
    )


@never_cache
@require_POST
def email_unsubscribe_confirm(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    """The confirmation page's button (CSRF-protected). Always answers with a redirect to
    the link (post/redirect/get), whose GET shows the receipt, or why nothing was done
    (invalid link, channel switched off, number erased): Back and reload never post again."""
    tenant, subscription = _subscription(slug, token)
    if subscription is not None:
        # When it cannot be done, the link's GET says why: the channel is switched off, or the number is gone.
        with contextlib.suppress(ChannelDisabled, email_links.EmailLinkUnusable):
            email_links.email_unsubscribe(subscription=subscription, via="page", language=page_language())
    return redirect("optout-email-unsubscribe", slug=tenant.slug, token=token)
