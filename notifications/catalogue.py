"""What can be notified, on which channels, and which variables each event's texts may use.

`EVENT_VARIABLES` is the one place that says which `{name}` a template may contain:
template validation, the admin's help text and preview, and rendering all read it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Event(models.TextChoices):
    OTP = "otp", _("One-time code")
    UNSUBSCRIBE_RECEIVED = "unsubscribe_received", _("Unsubscribe request received")
    UNSUBSCRIBE_COMPLETED = "unsubscribe_completed", _("Unsubscribe completed")
    RESUBSCRIBED = "resubscribed", _("Re-subscribed")
    RESUBSCRIBE_REFUSED = "resubscribe_refused", _("Re-subscribe refused")
    HELP = "help", _("Help reply")
    CLARIFY = "clarify", _("Asking to confirm an unclear reply")
    REQUEST_NEEDS_ATTENTION = "request_needs_attention", _("Request needs attention (to staff)")
    STATUS = "status", _("Answer to “did my opt-out work?”")
    STATUS_NONE = "status_none", _("Answer to “did my opt-out work?” when there is no request")
    UNROUTED_HELP = "unrouted_help", _("Help reply to a reply no provider could be found for")
    RESUBSCRIBE_ALL_NEEDED = (
        "resubscribe_all_needed",
        _("Re-subscribe to one service while all marketing is stopped"),
    )
    STILL_RECEIVING = "still_receiving", _("Answer to “I still get messages” after an opt-out")


class MessageChannel(models.TextChoices):
    """What a message is sent on (outbound); how requests reach us is the core's RequestChannel."""

    SMS = "sms", _("SMS")
    EMAIL = "email", _("Email")
    PUSH = "push", _("App push")


# Every variable each event's subject and body may use. Callers pass these in
# `context`; `tenant_name` is always added, the two public links default to
# the tenant's pages and `stopped`/`continuing` to words true of any scope
# (defaults.scope_words) when the caller leaves them out.
EVENT_VARIABLES: dict[str, frozenset[str]] = {
    Event.OTP: frozenset({"tenant_name", "code"}),
    # stopped: the services stopped, or "all marketing"; continuing: what is still sent, or "none"
    Event.UNSUBSCRIBE_RECEIVED: frozenset(
        {"tenant_name", "reference", "status_url", "stopped", "continuing"}
    ),
    Event.UNSUBSCRIBE_COMPLETED: frozenset(
        {"tenant_name", "reference", "status_url", "stopped", "continuing"}
    ),
    # `services`: what resumed, "all marketing" or the services' names.
    Event.RESUBSCRIBED: frozenset(
        {"tenant_name", "reference", "status_url", "unsubscribe_url", "keywords", "services"}
    ),
    Event.RESUBSCRIBE_REFUSED: frozenset({"tenant_name", "reference", "status_url"}),
    Event.HELP: frozenset({"tenant_name", "unsubscribe_url", "keywords"}),
    Event.CLARIFY: frozenset({"tenant_name", "keywords"}),
    Event.REQUEST_NEEDS_ATTENTION: frozenset({"tenant_name", "reference", "reason", "admin_url"}),
    # `state` is the request's state in words, `date` when it was received (tenant's time zone).
    Event.STATUS: frozenset({"tenant_name", "reference", "state", "date", "status_url"}),
    Event.STATUS_NONE: frozenset({"tenant_name", "keywords", "unsubscribe_url"}),
    Event.UNROUTED_HELP: frozenset({"tenant_name", "hub_url"}),
    Event.RESUBSCRIBE_ALL_NEEDED: frozenset({"tenant_name", "reference", "status_url"}),
    Event.STILL_RECEIVING: frozenset({"tenant_name", "reference", "status_url"}),
}

# Values that must never be stored in clear (database, admin, history, logs).
SECRET_VARIABLES = frozenset({"code"})
REDACTED = "******"

# Texts a person receives as the answer to their own request: they must carry no
# marketing, so a literal link is refused; links come only from variables.
CONFIRMATION_EVENTS = frozenset(
    {
        Event.OTP,
        Event.UNSUBSCRIBE_RECEIVED,
        Event.UNSUBSCRIBE_COMPLETED,
        Event.RESUBSCRIBED,
        Event.RESUBSCRIBE_REFUSED,
        Event.CLARIFY,
        Event.STATUS,
        Event.STATUS_NONE,
        Event.UNROUTED_HELP,
        Event.RESUBSCRIBE_ALL_NEEDED,
        Event.STILL_RECEIVING,
    }
)

LANGUAGE_CODES = tuple(code for code, _name in settings.LANGUAGES)


def tenant_links(slug: str) -> dict[str, str]:
    """The public pages (stable URLs, see PRODUCT.md) used when a caller gives no link."""
    base = settings.PUBLIC_BASE_URL
    return {
        "status_url": f"{base}/t/{slug}/status/",
        "unsubscribe_url": f"{base}/t/{slug}/unsubscribe/",
        "hub_url": f"{base}/hub/",
    }


def sample_values(*, tenant_name: str, slug: str) -> dict[str, str]:
    """Realistic values (real lengths) for the admin preview and segment count."""
    return {
        "tenant_name": tenant_name,
        "code": "482913",
        "reference": "K7M2-9QXP",
        "reason": "termination endpoint returned HTTP 503",
        "stopped": "流量优惠 Data offers",
        "continuing": "蓝钻会员 Blue Diamond club",
        "services": "流量优惠 Data offers",
        "admin_url": f"{settings.PUBLIC_BASE_URL}/admin/unsubscribe/unsubscriberequest/1/change/",
        "keywords": "TD/退订",
        "state": "已完成",
        "date": "2025-01-31 08:00",
        **tenant_links(slug),
    }


def language_for(requested: str | None, fallback: str) -> str:
    """'zh-Hans', 'zh-CN', 'zh' → 'zh-hans'; 'en-US' → 'en'; anything else → fallback."""
    if requested:
        code = requested.strip().lower().replace("_", "-")
        if code in LANGUAGE_CODES:
            return code
        primary = code.split("-")[0]
        for known in LANGUAGE_CODES:
            if known.split("-")[0] == primary:
                return known
    return fallback if fallback in LANGUAGE_CODES else LANGUAGE_CODES[0]
