"""How to unsubscribe from a tenant, channel by channel, in the person's language.

One place for the wording, used by the tenant's public page, the opt-out page and
`GET /api/v1/channels` (so partner apps show the same text people see).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from tenants.models import Tenant

from .models import Channel, ChannelSetting
from .selectors import enabled_channels


@dataclass(frozen=True)
class ChannelInstruction:
    channel: str
    title: str
    instruction: str
    details: dict[str, str]


def _reply_sms(setting: ChannelSetting) -> tuple[str, dict[str, str]]:
    numbers = setting.numbers()
    keywords = ["TD", *setting.keywords()]
    if numbers:
        text = _("Reply %(keyword)s to %(numbers)s.") % {
            "keyword": keywords[0],
            "numbers": " / ".join(numbers),
        }
    else:
        text = _("Reply %(keyword)s to any marketing message you received from us.") % {
            "keyword": keywords[0]
        }
    return text, {"numbers": ", ".join(numbers), "keywords": ", ".join(keywords)}


def _instruction(setting: ChannelSetting, language: str) -> ChannelInstruction:
    channel = setting.channel
    details: dict[str, str] = {}
    if channel == Channel.SMS:
        text, details = _reply_sms(setting)
    elif channel == Channel.WEB:
        path = reverse("unsubscribe-start", args=[setting.tenant.slug])
        text = _("Unsubscribe on our web page; we confirm your number with a one-time code.")
        details = {"path": path}
    elif channel == Channel.APP:
        app_path = (
            setting.app_path_en if language.startswith("en") and setting.app_path_en else setting.app_path_zh
        )
        text = (
            _("In our app: %(path)s.") % {"path": app_path}
            if app_path
            else _("In our app, open the message settings and switch marketing off.")
        )
        details = {"app_path": app_path}
    elif channel == Channel.HOTLINE:
        if setting.hotline_number:
            text = _("Call %(number)s") % {"number": setting.hotline_number}
            if setting.hotline_hours:
                text += " (" + setting.hotline_hours + ")"
            if setting.hotline_menu_key:
                text += _(", then press %(key)s") % {"key": setting.hotline_menu_key}
            text += "."
        else:
            text = _("Call our customer service hotline and ask to stop marketing.")
        details = {
            k: v
            for k, v in (
                ("number", setting.hotline_number),
                ("hours", setting.hotline_hours),
                ("menu_key", setting.hotline_menu_key),
            )
            if v
        }
    elif channel == Channel.EMAIL:
        text = _("Use the one-click unsubscribe link at the bottom of our emails.")
    elif channel == Channel.HUB:
        text = _("Stop marketing from every provider at once on the one-stop hub.")
        details = {"path": "/hub/"}
    else:  # partner
        text = _("Ask any of our partners' service desks; they file the request for you.")
    return ChannelInstruction(
        channel=channel, title=str(Channel(channel).label), instruction=text, details=details
    )


def channel_instructions(
    *, tenant: Tenant, language: str | None = None, for_people: bool = True
) -> list[ChannelInstruction]:
    """Every enabled way to unsubscribe, with its instruction in `language`. The
    partner API is a channel for systems, not people: left out of `for_people` lists."""
    language = language or tenant.default_language
    settings = [
        s for s in enabled_channels(tenant=tenant) if not (for_people and s.channel == Channel.PARTNER)
    ]
    with translation.override(language):
        return [_instruction(setting, language) for setting in settings]
