"""Built-in texts for every event in every language; a tenant's `Template` row overrides one.

SMS texts are short on purpose: Chinese is sent as UCS-2 (70 characters in one
message, 67 per part), so every character counts. Confirmations carry no marketing.
The subject is used for email and as the push title; SMS has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import Event


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
    # The confirmations say only what is true when they are sent: the number is
    # suppressed now, services are still being ended, the data is erased later; and
    # which marketing stopped ({stopped}) and which goes on ({continuing}).
    (Event.UNSUBSCRIBE_RECEIVED, ZH): DefaultText(
        "【{tenant_name}】已收到您的退订申请",
        "【{tenant_name}】已收到退订申请，即时停止向本号码发送：{stopped}；仍会发送：{continuing}。"
        "参考号 {reference}，查询进度：{status_url}",
    ),
    (Event.UNSUBSCRIBE_RECEIVED, EN): DefaultText(
        "{tenant_name}: we received your unsubscribe request",
        "{tenant_name}: Request received. Stopped now: {stopped}. Still sent: {continuing}. "
        "Ref {reference} {status_url}",
    ),
    (Event.UNSUBSCRIBE_COMPLETED, ZH): DefaultText(
        "【{tenant_name}】退订已生效：{stopped}",
        "【{tenant_name}】已停止向本号码发送：{stopped}。仍在发送的服务：{continuing}。"
        "相关业务正在终止，营销数据将按约定删除。参考号 {reference}，查询进度：{status_url}",
    ),
    (Event.UNSUBSCRIBE_COMPLETED, EN): DefaultText(
        "{tenant_name}: unsubscribed from {stopped}",
        "{tenant_name}: Stopped now: {stopped}. Still sent: {continuing}. "
        "Ending services; data to be erased. Ref {reference} {status_url}",
    ),
    (Event.RESUBSCRIBED, ZH): DefaultText(
        "【{tenant_name}】您已重新订阅",
        "【{tenant_name}】您已重新订阅：{services}。参考号 {reference}。如需退订，请回复{keywords}，或访问 {unsubscribe_url}",
    ),
    (Event.RESUBSCRIBED, EN): DefaultText(
        "{tenant_name}: you are subscribed again",
        "{tenant_name}: You are subscribed again to: {services}. Ref {reference}. "
        "To opt out, reply {keywords}, or visit {unsubscribe_url}",
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
        "【{tenant_name}】如需退订营销信息，请回复{keywords}，或访问 {unsubscribe_url}",
    ),
    (Event.HELP, EN): DefaultText(
        "{tenant_name}: how to unsubscribe",
        "{tenant_name}: To stop marketing messages, reply {keywords}, or visit {unsubscribe_url}",
    ),
    (Event.CLARIFY, ZH): DefaultText(
        "【{tenant_name}】请确认退订",
        "【{tenant_name}】如确认退订，请回复“是”，或回复{keywords}",
    ),
    (Event.CLARIFY, EN): DefaultText(
        "{tenant_name}: please confirm",
        "{tenant_name}: Reply {keywords} or YES to confirm you want to unsubscribe",
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
    # Answers to a status question ("退订成功了吗"): the number's real status, no marketing.
    (Event.STATUS, ZH): DefaultText(
        "【{tenant_name}】退订进度",
        "【{tenant_name}】您的退订申请 {reference}（{date}）：{state}。详情：{status_url}",
    ),
    (Event.STATUS, EN): DefaultText(
        "{tenant_name}: your opt-out",
        "{tenant_name}: Your unsubscribe request {reference} of {date}: {state}. Details: {status_url}",
    ),
    # A reply that opts out again while the opt-out is in force: "I still get messages".
    (Event.STILL_RECEIVING, ZH): DefaultText(
        "【{tenant_name}】已收到您的反馈",
        "【{tenant_name}】您已于退订申请 {reference} 退订。您反馈退订后仍收到营销短信，我们已记录并通知服务商处理。"
        "详情：{status_url}",
    ),
    (Event.STILL_RECEIVING, EN): DefaultText(
        "{tenant_name}: we have your report",
        "{tenant_name}: You opted out with request {reference}. We have recorded that you still get marketing "
        "messages and told the provider. Details: {status_url}",
    ),
    (Event.STATUS_NONE, ZH): DefaultText(
        "【{tenant_name}】没有退订记录",
        "【{tenant_name}】本号码没有退订申请记录。如需退订，请回复{keywords}，或访问 {unsubscribe_url}",
    ),
    (Event.STATUS_NONE, EN): DefaultText(
        "{tenant_name}: no opt-out on record",
        "{tenant_name}: We have no unsubscribe request from this number. "
        "To opt out, reply {keywords}, or visit {unsubscribe_url}",
    ),
    # 重新订阅 on one service's number while an all-marketing opt-out stands.
    (Event.RESUBSCRIBE_ALL_NEEDED, ZH): DefaultText(
        "【{tenant_name}】您已退订全部营销信息",
        "【{tenant_name}】您已退订全部营销信息，单项重新订阅不会恢复。如需恢复全部，请回复“恢复全部”。参考号 {reference}",
    ),
    (Event.RESUBSCRIBE_ALL_NEEDED, EN): DefaultText(
        "{tenant_name}: all marketing is stopped",
        "{tenant_name}: You stopped all marketing, so one service cannot resume alone. "
        "To resume everything, reply RESUME ALL. Ref {reference}.",
    ),
    # A reply to a shared gateway that matches no provider: point to the hub.
    (Event.UNROUTED_HELP, ZH): DefaultText(
        "【{tenant_name}】如何退订",
        "【{tenant_name}】无法确定您回复的服务商。请访问 {hub_url} 一次退订所有服务商的营销信息",
    ),
    (Event.UNROUTED_HELP, EN): DefaultText(
        "{tenant_name}: how to unsubscribe",
        "{tenant_name}: We could not tell which provider you replied to. "
        "Stop marketing from every provider at {hub_url}",
    ),
}


@dataclass(frozen=True)
class ScopeWords:
    """Words for the confirmations' `{stopped}` and `{continuing}`, per language, kept
    with the texts they go into (not in the catalogue: a tenant's SMS must not change
    with a translation pass)."""

    all_marketing: str  # {stopped} when the scope is all marketing
    nothing: str  # {continuing} when nothing else is sent
    separator: str  # between service names
    chosen: str  # {stopped} when a caller gives none: true whatever was chosen
    others: str  # {continuing} when a caller gives none


SCOPE_WORDS: dict[str, ScopeWords] = {
    ZH: ScopeWords("全部营销信息", "无", "、", "您选择退订的营销信息", "您未退订的其他服务"),
    EN: ScopeWords("all marketing", "none", ", ", "the marketing you chose", "anything you did not stop"),
}


def scope_words(language: str) -> ScopeWords:
    return SCOPE_WORDS.get(language) or SCOPE_WORDS[EN]


def default_text(event: str, language: str) -> DefaultText:
    """The built-in text; English when a language has no text of its own."""
    return DEFAULT_TEXTS.get((event, language)) or DEFAULT_TEXTS[(event, EN)]
