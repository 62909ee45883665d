"""Built-in texts for every event in every language; a tenant's `Template` row overrides one.

SMS texts are short on purpose: Chinese is sent as UCS-2 (70 characters in one
message, 67 per part), so every character counts. Confirmations carry no marketing.
The subject is used for email and as the push title; SMS has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import Event


@dataclass(frozen=True)
class DefaultText:
    subject: str
    body: str


ZH = "zh-hans"
EN = "en"

DEFAULT_TEXTS: dict[tuple[str, str], DefaultText] = {
    (Event.OTP, ZH): DefaultText(
        "【{tenant_name}】验证码",
        "【{tenant_name}】验证码 {code}，5分钟内有效。如非本人操作请忽略。",
    ),
    (Event.OTP, EN): DefaultText(
        "{tenant_name}: your verification code",
        "{tenant_name}: your code is {code}, valid for 5 minutes.",
    ),
    (Event.UNSUBSCRIBE_RECEIVED, ZH): DefaultText(
        "【{tenant_name}】已收到您的退订申请",
        "【{tenant_name}】已收到您的退订申请，即日起停止发送营销信息。参考号 {reference}，查询进度：{status_url}",
    ),
    (Event.UNSUBSCRIBE_RECEIVED, EN): DefaultText(
        "{tenant_name}: we received your unsubscribe request",
        "{tenant_name}: We received your request; marketing messages stop now. "
        "Ref {reference}. Status: {status_url}",
    ),
    (Event.UNSUBSCRIBE_COMPLETED, ZH): DefaultText(
        "【{tenant_name}】您已退订营销信息",
        "【{tenant_name}】您已退订营销信息，即日起不再发送。参考号 {reference}，查询进度：{status_url}",
    ),
    (Event.UNSUBSCRIBE_COMPLETED, EN): DefaultText(
        "{tenant_name}: you are unsubscribed",
        "{tenant_name}: You are unsubscribed and will get no more marketing messages. "
        "Ref {reference}. Status: {status_url}",
    ),
    (Event.RESUBSCRIBED, ZH): DefaultText(
        "【{tenant_name}】您已重新订阅",
        "【{tenant_name}】您已重新订阅营销信息。参考号 {reference}。如需退订请回复TD或访问 {unsubscribe_url}",
    ),
    (Event.RESUBSCRIBED, EN): DefaultText(
        "{tenant_name}: you are subscribed again",
        "{tenant_name}: You are subscribed to marketing messages again. Ref {reference}. "
        "To opt out, reply STOP or visit {unsubscribe_url}",
    ),
    (Event.RESUBSCRIBE_REFUSED, ZH): DefaultText(
        "【{tenant_name}】无法重新订阅",
        "【{tenant_name}】您的退订不可撤销，无法重新订阅。参考号 {reference}。",
    ),
    (Event.RESUBSCRIBE_REFUSED, EN): DefaultText(
        "{tenant_name}: we cannot subscribe you again",
        "{tenant_name}: Your opt-out cannot be undone, so we cannot subscribe you again. Ref {reference}.",
    ),
    (Event.HELP, ZH): DefaultText(
        "【{tenant_name}】如何退订",
        "【{tenant_name}】回复TD退订营销信息，或访问 {unsubscribe_url}",
    ),
    (Event.HELP, EN): DefaultText(
        "{tenant_name}: how to unsubscribe",
        "{tenant_name}: Reply STOP to stop marketing messages, or visit {unsubscribe_url}",
    ),
    (Event.CLARIFY, ZH): DefaultText(
        "【{tenant_name}】请确认退订",
        "【{tenant_name}】回复TD确认退订",
    ),
    (Event.CLARIFY, EN): DefaultText(
        "{tenant_name}: please confirm",
        "{tenant_name}: Reply STOP to confirm you want to unsubscribe",
    ),
    (Event.REQUEST_NEEDS_ATTENTION, ZH): DefaultText(
        "【{tenant_name}】退订请求 {reference} 需要处理",
        "【{tenant_name}】退订请求 {reference} 无法自动完成：{reason}。请在管理后台处理：{admin_url}",
    ),
    (Event.REQUEST_NEEDS_ATTENTION, EN): DefaultText(
        "{tenant_name}: unsubscribe request {reference} needs attention",
        "{tenant_name}: unsubscribe request {reference} could not be completed automatically: {reason}. "
        "Please handle it in the admin: {admin_url}",
    ),
}


def default_text(event: str, language: str) -> DefaultText:
    """The built-in text; English when a language has no text of its own."""
    return DEFAULT_TEXTS.get((event, language)) or DEFAULT_TEXTS[(event, EN)]
