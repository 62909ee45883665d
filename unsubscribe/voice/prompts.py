"""What the voice menu says: built-in texts in Chinese and English, the tenant's own
wording (`VoicePrompt`) over them, and how a reference is read aloud.

Texts use the notification templates' tiny syntax (`{name}`, no attribute access),
rendered by `notifications.rendering.render`. Keys are fixed by the flow (1 all, 2 a
service, 9 again, 0 back, 8 the other language or more services, * the previous page), so the texts name
them literally; a tenant rewording a prompt sees the result in the admin preview.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from django.utils.translation import gettext as _

from notifications.rendering import TemplateSyntaxError, render, variables_in
from tenants.models import Tenant
from unsubscribe.channels import sms_keywords
from unsubscribe.models import RequestChannel
from unsubscribe.selectors import channel_setting

from .models import PromptKey, VoicePrompt

logger = logging.getLogger(__name__)

ZH = "zh-hans"
EN = "en"
LANGUAGES = (ZH, EN)
# What <Say language=…> and the generic protocol call them.
SPEECH_LANGUAGE = {ZH: "zh-CN", EN: "en-US"}
TERMS_SHORT_CHARS = 120
# Twilio refuses a <Say> over 3,000 bytes for Polly voices (4,096 for basic ones; error
# 13521), and a Chinese character is 3 bytes in UTF-8: the safe bound for every voice.
SAY_MAX_BYTES = 3000

K = PromptKey
DEFAULTS: dict[tuple[str, str], str] = {
    (K.MENU, ZH): (
        "您好，这里是{tenant_name}自助退订热线。退订{tenant_name}的全部营销信息，请按1；"
        "选择要退订的业务，请按2；重听，请按9。"
    ),
    (K.MENU, EN): (
        "Hello, this is the {tenant_name} opt-out line. Press 1 to stop all marketing from "
        "{tenant_name}; press 2 to choose a service; press 9 to hear this again."
    ),
    # Spoken in its own language after the other language's menu.
    (K.LANGUAGE_SWITCH, ZH): "中文服务，请按8。",
    (K.LANGUAGE_SWITCH, EN): "For English, press 8.",
    (K.SERVICES, ZH): "请选择要退订的业务。{services}{more}返回主菜单，请按0；重听，请按9。",
    (K.SERVICES, EN): (
        "Choose the service to stop. {services} {more} Press 0 for the main menu; press 9 to hear this again."
    ),
    (K.SERVICE_ITEM, ZH): "退订{service_name}，请按{key}；",
    (K.SERVICE_ITEM, EN): "For {service_name}, press {key}.",
    (K.SERVICES_MORE, ZH): "更多业务，请按8；",
    (K.SERVICES_MORE, EN): "For more services, press 8.",
    (K.SERVICES_PREVIOUS, ZH): "上一页，请按星号键；",
    (K.SERVICES_PREVIOUS, EN): "For the previous page, press star.",
    (K.SERVICE_GONE, ZH): "抱歉，您选择的业务已不再提供，无需退订。",
    (K.SERVICE_GONE, EN): "Sorry, the service you chose is no longer offered, so there is nothing to stop.",
    (K.NO_SERVICES, ZH): "{tenant_name}没有可单独退订的业务。退订全部营销信息，请按1；返回主菜单，请按0。",
    (K.NO_SERVICES, EN): (
        "{tenant_name} has no separate services. Press 1 to stop all marketing; press 0 for the main menu."
    ),
    (K.CONFIRM, ZH): (
        "您将退订{tenant_name}的{scope}。{terms}{irreversible}确认退订，请按1；返回主菜单，请按0；重听，请按9。"
    ),
    (K.CONFIRM, EN): (
        "You are stopping {scope} from {tenant_name}. {terms} {irreversible} "
        "Press 1 to confirm; press 0 for the main menu; press 9 to hear this again."
    ),
    (K.TERMS, ZH): "退订后即时停止发送营销信息，用于营销的个人信息将被删除。",
    (K.TERMS, EN): "Marketing stops at once, and the personal data used for it is deleted.",
    (K.IRREVERSIBLE, ZH): "请注意，退订后不可撤销，您将无法重新订阅。",
    (K.IRREVERSIBLE, EN): "Please note: this cannot be undone; you will not be able to subscribe again.",
    (K.SCOPE_ALL, ZH): "全部营销信息",
    (K.SCOPE_ALL, EN): "all marketing",
    (K.FILED, ZH): (
        "您的退订已受理，{tenant_name}的{scope}即时停止发送。您的参考号是：{reference}。"
        "再说一遍：{reference}。{confirmation}感谢来电，再见。"
    ),
    (K.FILED, EN): (
        "Your request is filed: {scope} from {tenant_name} stops now. Your reference is {reference}. "
        "Again: {reference}. {confirmation} Thank you for calling, goodbye."
    ),
    (K.WITHHELD, ZH): (
        "我们无法识别您的来电号码，因此不能通过电话为您退订。请回复{keyword}到{tenant_name}发给您的任意营销短信，"
        "或在{tenant_name}网站的退订页面办理。再见。"
    ),
    (K.WITHHELD, EN): (
        "We cannot see your number, so we cannot unsubscribe you by phone. Reply {keyword} to any marketing "
        "text from {tenant_name}, or use the unsubscribe page on the {tenant_name} website. Goodbye."
    ),
    (
        K.UNAVAILABLE,
        ZH,
    ): "{tenant_name}的自助语音退订暂未开通。请回复{keyword}到任意营销短信，或在网站的退订页面办理。再见。",
    (K.UNAVAILABLE, EN): (
        "The {tenant_name} self-service opt-out line is not available. Reply {keyword} to any marketing text, "
        "or use the unsubscribe page on our website. Goodbye."
    ),
    (K.INVALID, ZH): "您的按键无效。",
    (K.INVALID, EN): "Sorry, that key is not valid.",
    (K.NO_INPUT, ZH): "我们没有收到您的按键。",
    (K.NO_INPUT, EN): "Sorry, we did not hear a key press.",
    (K.GIVE_UP, ZH): (
        "由于没有收到有效按键，本次通话即将结束，您的退订没有提交。您可以再次来电，或回复{keyword}到任意营销短信。再见。"
    ),
    (K.GIVE_UP, EN): (
        "We did not get a valid key, so this call ends now and nothing was filed. Call again, or reply "
        "{keyword} to any marketing text. Goodbye."
    ),
    (K.FAILED, ZH): "抱歉，现在无法为您提交退订。请稍后再次来电，或回复{keyword}到任意营销短信。再见。",
    (K.FAILED, EN): (
        "Sorry, we cannot file your request right now. Please call again later, or reply {keyword} to any "
        "marketing text. Goodbye."
    ),
}

VARIABLES: dict[str, frozenset[str]] = {
    K.MENU: frozenset({"tenant_name"}),
    K.LANGUAGE_SWITCH: frozenset(),
    K.SERVICES: frozenset({"tenant_name", "services", "more"}),
    K.SERVICE_ITEM: frozenset({"service_name", "key"}),
    K.SERVICES_MORE: frozenset(),
    K.SERVICES_PREVIOUS: frozenset(),
    K.SERVICE_GONE: frozenset({"tenant_name"}),
    K.NO_SERVICES: frozenset({"tenant_name"}),
    K.CONFIRM: frozenset({"tenant_name", "scope", "terms", "irreversible"}),
    K.TERMS: frozenset({"tenant_name"}),
    K.IRREVERSIBLE: frozenset(),
    K.SCOPE_ALL: frozenset({"tenant_name"}),
    K.FILED: frozenset({"tenant_name", "scope", "reference", "confirmation"}),
    K.WITHHELD: frozenset({"tenant_name", "keyword"}),
    K.UNAVAILABLE: frozenset({"tenant_name", "keyword"}),
    K.INVALID: frozenset(),
    K.NO_INPUT: frozenset(),
    K.GIVE_UP: frozenset({"tenant_name", "keyword"}),
    K.FAILED: frozenset({"tenant_name", "keyword"}),
}

# {confirmation} in the filed prompt: a landline cannot take the confirmation SMS.
CONFIRMATION_SMS = {ZH: "确认短信稍后发到您的手机。", EN: "A confirmation text message follows."}
CONFIRMATION_NONE = {
    ZH: "您的号码无法接收短信，因此不会发送确认短信。",
    EN: "Your number cannot take text messages, so no confirmation text is sent.",
}
# The most a variable can add to a tenant's text, in UTF-8 bytes (names are up to 200
# characters; lists are split over several <Say> when they grow, see `split_say`).
VARIABLE_MAX_BYTES = {
    "tenant_name": 600,
    "service_name": 600,
    "scope": 600,
    "key": 1,
    "keyword": 120,
    "reference": 60,
    "terms": TERMS_SHORT_CHARS * 2 * 3,
    "irreversible": 300,
    "confirmation": 150,
    "more": 150,
    "services": 0,
}
# Tenant terms that already say the opt-out is final: the built-in warning is not repeated.
_SAYS_FINAL = re.compile(r"不可撤销|无法撤销|不能撤销|\bfinal\b|irreversible|cannot be undone", re.I)

SAMPLE_VALUES = {
    "tenant_name": "蓝钻商城",
    "services": "退订会员优惠，请按1；退订流量提醒，请按2；",
    "more": "",
    "service_name": "会员优惠",
    "key": "1",
    "scope": "全部营销信息",
    "terms": "退订后即时停止发送营销信息。",
    "irreversible": "",
    "reference": "K，7，M，2，9，Q，X，P",
    "keyword": "TD、退订或QX",
    "confirmation": CONFIRMATION_SMS[ZH],
}
SAMPLE_VALUES_EN = {
    **SAMPLE_VALUES,
    "tenant_name": "Lanzuan Shop",
    "services": "For Member offers, press 1. For Data alerts, press 2.",
    "service_name": "Member offers",
    "scope": "all marketing",
    "terms": "Marketing stops at once.",
    "reference": "K, 7, M, 2, 9, Q, X, P",
    "keyword": "STOP, TD or QX",
    "confirmation": CONFIRMATION_SMS[EN],
}

_SPACES = re.compile(r"\s{2,}")
_SENTENCE_END = re.compile(r"(?<=[。！？.!?])")


def prompt_errors(key: str, text: str) -> list[str]:
    """Problems with a tenant's text for this prompt (empty when it is fine)."""
    try:
        used = variables_in(text)
    except TemplateSyntaxError as exc:
        return [str(exc)]
    unknown = sorted(set(used) - VARIABLES.get(key, frozenset()))
    if unknown:
        allowed = ", ".join("{" + name + "}" for name in sorted(VARIABLES.get(key, frozenset()))) or "—"
        return [
            _("Unknown variables %(names)s. Available: %(allowed)s.")
            % {"names": ", ".join("{" + n + "}" for n in unknown), "allowed": allowed}
        ]
    longest = len(render(text, {name: "" for name in used}).encode()) + sum(
        VARIABLE_MAX_BYTES.get(name, 600) * len(re.findall(r"\{" + name + r"\}", text)) for name in set(used)
    )
    if longest > SAY_MAX_BYTES:
        return [
            _(
                "This text is too long for the voice platform: spoken with its variables it can reach "
                "%(bytes)d bytes, and the limit is %(limit)d bytes (about %(zh)d Chinese characters or "
                "%(limit)d Latin letters). Shorten it."
            )
            % {"bytes": longest, "limit": SAY_MAX_BYTES, "zh": SAY_MAX_BYTES // 3}
        ]
    return []


def says_final(terms: str) -> bool:
    return bool(_SAYS_FINAL.search(terms or ""))


def split_say(text: str, limit: int = SAY_MAX_BYTES) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut at sentence ends where it can
    (then at any character): one <Say> over Twilio's limit is refused outright."""
    if len(text.encode()) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[。！？；.!?;])", text):
        rest = sentence
        while len(rest.encode()) > limit:  # one sentence over the limit: cut it hard
            cut = len(rest)
            while len(rest[:cut].encode()) > limit:
                cut -= 1
            if current:
                pieces.append(current.strip())
                current = ""
            pieces.append(rest[:cut].strip())
            rest = rest[cut:]
        if len((current + rest).encode()) > limit:
            pieces.append(current.strip())
            current = rest
        else:
            current += rest
    if current.strip():
        pieces.append(current.strip())
    return [p for p in pieces if p]


def spell_reference(reference: str, language: str) -> str:
    """'K7M2-9QXP' → 'K, 7, M, 2, 9, Q, X, P': text-to-speech reads 'K7M2' as a word otherwise."""
    comma = "，" if language == ZH else ", "
    return comma.join(ch for ch in reference if ch.isalnum())


def short_terms(text: str) -> str:
    """The first sentences of the tenant's terms, up to TERMS_SHORT_CHARS: a caller cannot
    scroll back, and the full terms are on the page and in the confirmation."""
    text = " ".join((text or "").split())
    if not text:
        return ""
    out = ""
    for sentence in _SENTENCE_END.split(text):
        if not sentence:
            continue
        if out and len(out) + len(sentence) > TERMS_SHORT_CHARS:
            break
        out += sentence
    return out[: TERMS_SHORT_CHARS * 2]


class PromptBook:
    """One tenant's prompts, read once per call step."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.overrides = {
            (p.key, p.language): p.text
            for p in VoicePrompt.objects.for_tenant(tenant).only("key", "language", "text")
        }
        self._keywords: list[str] | None = None

    def tenant_name(self, language: str) -> str:
        return (self.tenant.name_en or self.tenant.name) if language == EN else self.tenant.name

    def keyword(self, language: str) -> str:
        """The reply keywords the tenant advertises for SMS (the two a caller can remember)."""
        if self._keywords is None:
            self._keywords = channel_setting(tenant=self.tenant, channel=RequestChannel.SMS).keywords()
        words = sms_keywords(self._keywords, language)
        if language == EN:  # an English voice cannot read a Chinese keyword
            words = [w for w in words if w.isascii()] or ["STOP"]
        words = words[:4]  # a caller cannot note down a long list
        comma, last = (", ", " or ") if language == EN else ("、", "或")
        return words[0] if len(words) == 1 else comma.join(words[:-1]) + last + words[-1]

    def text(self, key: str, language: str, values: Mapping[str, str] | None = None) -> str:
        language = language if language in LANGUAGES else ZH
        base = {"tenant_name": self.tenant_name(language)}
        if "keyword" in VARIABLES.get(key, frozenset()):
            base["keyword"] = self.keyword(language)
        values = {**base, **(values or {})}
        own = self.overrides.get((key, language))
        if own is not None:
            try:
                return _tidy(render(own, values))
            except (ValueError, TemplateSyntaxError):
                # Saved texts are checked in the admin; one that still fails must not end the call.
                logger.warning("voice prompt %s/%s of %s cannot be rendered", key, language, self.tenant.slug)
        return _tidy(render(DEFAULTS[(key, language)], values))

    def terms(self, language: str) -> str:
        if (K.TERMS, language) in self.overrides:
            return self.text(K.TERMS, language)
        # Not terms_for(): it falls back to the Chinese terms, which an English voice cannot read.
        own_terms = self.tenant.terms_en if language == EN else self.tenant.terms_zh
        return short_terms(own_terms) or self.text(K.TERMS, language)


def _tidy(text: str) -> str:
    return _SPACES.sub(" ", text).strip()
