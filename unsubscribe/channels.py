"""Every way a person can unsubscribe from a tenant, with its wording in their language.

One place for the wording, used by the tenant's public page, the opt-out page,
the hub and `GET /api/v1/channels` (so partner apps show the text people see).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from tenants.models import Tenant

from .models import RequestChannel
from .selectors import channel_setting, enabled_channels

# Shown first whatever the tenant adds: the standard Chinese keyword, and the English one.
DEFAULT_KEYWORDS = {"zh-hans": ["TD", "退订"], "en": ["STOP", "TD"]}


def sms_keywords(tenant_keywords: list[str], language: str) -> list[str]:
    """The reply keywords a tenant advertises in this language: the standard ones first,
    then its own (the SMS channel's extra keywords)."""
    defaults = DEFAULT_KEYWORDS["en" if language.startswith("en") else "zh-hans"]
    known = {d.upper() for d in defaults}
    return defaults + [k for k in tenant_keywords if k.upper() not in known]


@dataclass(frozen=True)
class Way:
    channel: str
    title: str
    instruction: str
    url: str = ""
    keywords: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    app_path: str = ""
    hotline_number: str = ""
    hotline_hours: str = ""
    hotline_menu_key: str = ""


def _hotline_text(number: str, key: str, hours: str) -> str:
    values = {"number": number, "key": key, "hours": hours}
    if key and hours:
        return _("Call %(number)s, press %(key)s (open %(hours)s).") % values
    if key:
        return _("Call %(number)s, press %(key)s.") % values
    if hours:
        return _("Call %(number)s (open %(hours)s).") % values
    return _("Call %(number)s.") % values


def ways_to_unsubscribe(*, tenant: Tenant, language: str | None = None) -> list[Way]:
    """Every enabled way a person can use, in a stable order. Channels with nothing
    to tell a person (the partner API, an app with no path set, a hotline with no
    number) are left out."""
    language = language or tenant.default_language
    english = language.startswith("en")
    ways: list[Way] = []
    with translation.override(language):
        for setting in enabled_channels(tenant=tenant):
            channel = setting.channel
            if channel == RequestChannel.SMS:
                keywords, numbers = sms_keywords(setting.keywords(), language), setting.numbers()
                values = {"keywords": " / ".join(keywords), "numbers": ", ".join(numbers)}
                text = (
                    _("Reply %(keywords)s to %(numbers)s.") % values
                    if numbers
                    else _("Reply %(keywords)s to any marketing SMS from us.") % values
                )
                ways.append(Way(channel, _("By SMS"), text, keywords=keywords, numbers=numbers))
            elif channel == RequestChannel.WEB:
                ways.append(
                    Way(
                        channel,
                        _("Online"),
                        _("Unsubscribe on this website with a one-time code"),
                        url=reverse("unsubscribe-start", args=[tenant.slug]),
                    )
                )
            elif channel == RequestChannel.APP:
                path = (setting.app_path_en if english else setting.app_path_zh) or setting.app_path_zh
                if path:
                    ways.append(Way(channel, _("In the app"), path, app_path=path))
            elif channel == RequestChannel.HOTLINE:
                if setting.hotline_number:
                    text = (
                        _("Call %(number)s and follow the voice prompts (any time, no agent needed).")
                        % {"number": setting.hotline_number}
                        if setting.ivr_enabled
                        else _hotline_text(
                            setting.hotline_number, setting.hotline_menu_key, setting.hotline_hours
                        )
                    )
                    ways.append(
                        Way(
                            channel,
                            _("By phone"),
                            text,
                            hotline_number=setting.hotline_number,
                            hotline_hours=setting.hotline_hours,
                            hotline_menu_key=setting.hotline_menu_key,
                        )
                    )
            elif channel == RequestChannel.EMAIL:
                ways.append(
                    Way(
                        channel,
                        _("By email"),
                        _("Use the one-click unsubscribe link at the end of any of our marketing emails."),
                    )
                )
            elif channel == RequestChannel.HUB:
                ways.append(
                    Way(
                        channel,
                        _("Every provider at once"),
                        _("The one-stop hub stops marketing from every provider on Lanzuan"),
                        url=reverse("optout-hub"),
                    )
                )
    return ways


def reply_keywords(tenant: Tenant, language: str) -> str:
    """The reply keywords the tenant advertises in a language ("TD/退订"): what texts
    say when their sender gives none (registered with notifications in apps.py)."""
    return "/".join(
        sms_keywords(channel_setting(tenant=tenant, channel=RequestChannel.SMS).keywords(), language)
    )
