"""What a reply SMS causes: store it, understand it, act on it, reply — in one transaction.

Rules kept here, in one place:
- A reply is stored in the same transaction as what it causes (a request filed, a
  re-subscribe, a reply queued), before the gateway is answered. A provider's retry of
  the same message id returns the stored row and causes nothing new.
- A person's opt-out is never dropped: when we cannot act on it (the tenant switched
  the SMS channel off, the sender's number is not valid, the core refused it), the
  message is kept and flagged for the tenant's staff instead.
- Replies go through notifications (recorded as Messages, sent after commit); at most
  one clarification per number per day.
- Numbers are masked in logs; bodies are never logged.
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from lanzuan.phones import mask_digit_runs
from notifications.defaults import scope_words
from notifications.services import notification_send
from tenants.models import Tenant
from unsubscribe import links
from unsubscribe.channels import sms_keywords
from unsubscribe.errors import ResubscribeRefused, UnsubscribeError
from unsubscribe.inbound.intent import CLARIFICATION as CONTEXT_CLARIFICATION
from unsubscribe.inbound.intent import IntentResult, classify, normalise
from unsubscribe.models import (
    SCOPE_ALL,
    ChannelSetting,
    RequestChannel,
    Service,
    StillReceivingReport,
    Suppression,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.references import new_reference
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.sendlogs.services import still_receiving_report
from unsubscribe.suppressions.services import suppression_lift

from . import selectors
from .models import (
    Action,
    Context,
    InboundCredential,
    InboundMessage,
    Intent,
    PlatformInboundCredential,
    Provider,
    ReplyRoute,
    UnroutedMessage,
)

logger = logging.getLogger(__name__)

CLARIFY_WINDOW = timedelta(hours=24)
# What acting on a stored reply may change (_act and _forget_number_when_done).
ACTED_FIELDS = ["request", "action", "note", "flagged_for_attention", "flag_reason", "from_number", "body"]
ERASED_BODY = "[erased]"  # what erasure used to leave; kept to recognise old rows
# Country codes whose people read Chinese: a keyword alone ("HELP", "TD") from such a
# number is answered in Chinese (item 14: "Reply STOP" in English to a +86 number).
CHINESE_COUNTRY_CODES = frozenset({86, 852, 853, 886})
# "恢复全部" / "resume all": the explicit words that lift an all-marketing opt-out
# even on a route of one service.
RESUME_EVERYTHING = re.compile(
    r"(恢复|重新订阅|重新开通|订阅)(全部|所有|一切)|(全部|所有)(恢复|重新订阅|订阅)"
    r"|\b(resume|restore|resubscribe|subscribe|start)( me)? (all|everything)\b|\bstartall\b"
)
# Ideographs, CJK punctuation and full-width forms ("ＴＤ", "？" typed on a Chinese keyboard).
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60]")
_ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class Received:
    """What a webhook answers with: the provider's id and what the reply caused."""

    message_id: str
    action: str


class InboundError(UnsubscribeError):
    """A staff action on a stored reply cannot be done; the message is safe to show."""

    code = "inbound_error"


def guess_language(text: str, *, number: str | None = None, default: str) -> str:
    """The language to answer in.

    Chinese characters → zh-hans; clearly English (two English words or more, "please
    stop") → en. A keyword alone ("HELP", "STOP", "TD", "?") is used by everyone, so the
    number decides: a Chinese-speaking country code (+86, +852, +853, +886) → zh-hans,
    any other valid number → en. Without a usable number, an English word → en, else the
    tenant's language.
    """
    text = text or ""
    if _CJK.search(text):
        return "zh-hans"
    if len(_LATIN_WORD.findall(text)) >= 2:
        return "en"
    country = _country_code(number)
    if country is not None:
        return "zh-hans" if country in CHINESE_COUNTRY_CODES else "en"
    if _ENGLISH_WORD.search(text):
        return "en"
    return default


def _country_code(number: str | None) -> int | None:
    if not number:
        return None
    try:
        code = phonenumbers.parse(number, None).country_code
    except phonenumbers.NumberParseException:
        return None
    return int(code) if code else None


def inbound_message_receive(
    *,
    tenant: Tenant,
    provider: str,
    message_id: str,
    from_number: str,
    to: str,
    body: str,
    received_at: datetime | None = None,
    sign_name: str = "",
    gateway_account: PlatformInboundCredential | None = None,
) -> InboundMessage:
    """Store one reply and do what it asks, atomically; return the stored row.

    The reply is read against what we last asked the number: after a clarification
    (within CLARIFY_WINDOW, not answered yet) a short yes confirms the opt-out.

    The same (tenant, provider, message_id) again returns the first row untouched.
    Raises ValueError for an unknown provider or an empty message id (the views
    answer 400 before that can happen).
    """
    if provider not in Provider.values:
        raise ValueError(f"unknown provider {provider!r}")
    message_id = _message_id_checked(message_id)
    existing = _stored(tenant, provider, message_id)
    if existing is not None:
        return existing
    return _new_message_receive(
        tenant=tenant,
        provider=provider,
        message_id=message_id,
        from_number=from_number,
        to=to,
        body=body,
        received_at=received_at,
        sign_name=sign_name,
        gateway_account=gateway_account,
    )


def _stored(tenant: Tenant, provider: str, message_id: str) -> InboundMessage | None:
    return (
        InboundMessage.objects.for_tenant(tenant)
        .filter(provider=provider, provider_message_id=message_id)
        .first()
    )


def _new_message_receive(
    *,
    tenant: Tenant,
    provider: str,
    message_id: str,
    from_number: str,
    to: str,
    body: str,
    received_at: datetime | None,
    sign_name: str,
    gateway_account: PlatformInboundCredential | None,
) -> InboundMessage:
    """inbound_message_receive once the caller has found no stored row for the message id
    (`message_id` checked): a concurrent delivery of the same message is still told apart here."""
    e164, sender = _sender(from_number)
    sender_hash = phones.tenant_phone_hash(tenant.pk, sender)
    setting = selectors.sms_setting(tenant=tenant)
    reading = _reading(
        tenant=tenant,
        e164=e164,
        sender_hash=sender_hash,
        body=body,
        setting=setting,
        to=to,
        sign_name=sign_name,
    )
    result, context = reading.result, reading.context

    try:
        with transaction.atomic():
            # The row goes in first: a concurrent delivery of the same message blocks here on
            # the unique constraint until the first commits, then fails (its transaction, with
            # nothing else in it yet, rolls back), and finds the first row instead of filing a
            # second request. No savepoint: two statements less per reply.
            message = InboundMessage.objects.create(
                tenant=tenant,
                provider=provider,
                provider_message_id=message_id,
                reference=new_reference(),
                from_number=sender,
                from_hash=sender_hash,
                from_masked=phones.mask(sender),
                to=(to or "").strip()[:64],
                sign_name=(sign_name or "").strip()[:100],
                body=body or "",
                received_at=received_at or timezone.now(),
                language=guess_language(body, number=e164, default=tenant.default_language),
                intent=result.intent,
                confidence=round(result.confidence, 3),
                matched_rule=result.matched[:300],
                context=Context.CLARIFICATION if context else Context.NONE,
                gateway_account=gateway_account,
                route=reading.route,
            )
            _act(message, result, e164, setting)
            _forget_number_when_done(message)
            message.save(update_fields=ACTED_FIELDS)
    except IntegrityError:
        winner = _stored(tenant, provider, message_id)
        if winner is None:
            raise
        return winner

    logger.info(
        "reply SMS %s/%s from %s: %s (%.2f) → %s%s",
        provider,
        message_id,
        message.from_masked,
        message.intent,
        message.confidence,
        message.action,
        " [needs attention]" if message.flagged_for_attention else "",
    )
    return message


def _message_id_checked(message_id: str) -> str:
    message_id = str(message_id).strip()
    if not message_id or len(message_id) > 100:
        raise ValueError("a provider message id of 1 to 100 characters is required")
    return message_id


def _sender(from_number: str) -> tuple[str | None, str]:
    """The sender's number in E.164 (None when it is not a phone number), and what is stored."""
    raw_from = (from_number or "").strip()[:32]
    try:
        e164: str | None = phones.normalise(raw_from)
    except phones.InvalidPhoneNumber:
        e164 = None  # kept and flagged by _act; an alphanumeric sender cannot be acted on
    return e164, e164 or raw_from


@dataclass(frozen=True)
class _Reading:
    result: IntentResult
    context: str | None  # CONTEXT_CLARIFICATION when read as the answer to our question
    route: ReplyRoute | None


def _reading(
    *,
    tenant: Tenant,
    e164: str | None,
    sender_hash: str,
    body: str,
    setting: ChannelSetting,
    to: str,
    sign_name: str,
) -> _Reading:
    """What the reply means, read against what we last asked the number, and what it is about."""
    asked = (
        selectors.pending_clarification(
            tenant=tenant, from_hash=sender_hash, since=timezone.now() - CLARIFY_WINDOW
        )
        if e164
        else None
    )
    context = CONTEXT_CLARIFICATION if asked is not None else None
    result = classify(body or "", extra_unsubscribe_keywords=setting.keywords(), context=context)
    route = selectors.reply_route_for(tenant=tenant, to=to, sign_name=sign_name)
    if asked is not None and _answers_the_question(body, setting, result):
        # The answer is about what we asked: a "是" to a question about one service
        # stops that service, whichever of the tenant's numbers it was sent to. A reply
        # that means the same without the question (a TD of its own) keeps its own route.
        route = asked.route
    return _Reading(result, context, route)


# --- what each intent does (inside the caller's transaction) -------------------------------


def _act(message: InboundMessage, result: IntentResult, e164: str | None, setting: ChannelSetting) -> None:
    """Do what the reply asks, or hold it for staff when it cannot be acted on."""
    if not setting.enabled:
        if result.intent in ("unsubscribe", "resubscribe"):
            _hold(
                message,
                _(
                    "The SMS channel is switched off, so this reply was not acted on. "
                    "Read it and act for the person (File unsubscribe request)."
                ),
            )
    elif e164 is None:
        if result.intent in ("unsubscribe", "resubscribe"):
            _hold(message, _("The sender is not a valid phone number, so the reply could not be acted on."))
    elif result.intent == "unsubscribe" and result.action == "act":
        _file_request(message, e164, setting)
    elif result.intent == "resubscribe" and result.action == "act":
        # Only explicit re-subscribe words from the number itself; never a yes.
        if result.confidence >= settings.LANZUAN_RESUBSCRIBE_MIN_CONFIDENCE:
            _resubscribe(message, e164, setting)
        else:
            _resubscribe_unsure(message)
    elif result.action == "reply_help":
        _send_help(message, e164, setting)
    elif result.action == "reply_status":
        _send_status(message, e164, setting)
    elif result.action == "clarify" and result.intent != "resubscribe":
        # Unsure whether it is an opt-out: ask once. An unsure re-subscribe is left
        # alone: lifting an opt-out takes explicit words, never a guess.
        _clarify(message, e164, setting)


def _answers_the_question(body: str, setting: ChannelSetting, result: IntentResult) -> bool:
    """Was the reply read as the answer to our clarification (a yes/no that means
    something only because we asked), rather than on its own words?"""
    own = classify(body or "", extra_unsubscribe_keywords=setting.keywords())
    return (own.intent, own.action) != (result.intent, result.action)


def _resubscribe_unsure(message: InboundMessage) -> None:
    """Lifting an opt-out is the one action that can break the law, so a re-subscribe
    below LANZUAN_RESUBSCRIBE_MIN_CONFIDENCE ("退订以后还能恢复吗" read as resubscribe)
    lifts nothing. Staff are asked to read it when there is an opt-out it could be
    about; otherwise there is nothing to lift anyway."""
    message.action = Action.NONE
    if Suppression.objects.for_tenant(message.tenant).filter(phone_hash=message.from_hash).exists():
        message.flagged_for_attention = True
        message.flag_reason = _(
            "This reply may ask to re-subscribe, but not clearly enough to lift the opt-out "
            "(confidence %(confidence).2f). Nothing was lifted; read it and, if the person asks to "
            "re-subscribe, ask them to reply with explicit words or use the web page."
        ) % {"confidence": message.confidence}


def _forget_number_when_done(message: InboundMessage) -> None:
    """The raw sender number is kept only while it is needed: to file or to answer.

    Once the reply is dealt with (a request filed — the request holds the number —, an
    answer queued — the Message holds its recipient —, or nothing to do) only the hash
    (what a pending clarification and the status answer look up) and the mask stay, and
    the digit runs of the text are masked: the wording is the evidence, the numbers in
    it are not. A held or flagged reply keeps both for staff, who may still file it
    (inbound_message_file_request), until handled or swept (inbound_numbers_sweep)."""
    if message.action == Action.HELD or message.flagged_for_attention:
        return
    message.from_number = ""
    message.body = mask_digit_runs(message.body)


def _hold(message: InboundMessage, reason: str) -> None:
    message.action = Action.HELD
    message.flagged_for_attention = True
    message.flag_reason = reason


def _scope(message: InboundMessage) -> list[str] | None:
    service = message.route.service if message.route else None
    return [service.code] if service is not None else None


def _evidence(message: InboundMessage) -> dict[str, Any]:
    return {"provider": message.provider, "message_id": message.provider_message_id, "to": message.to}


def _file_request(message: InboundMessage, e164: str, setting: ChannelSetting) -> None:
    """The core files, suppresses and later confirms (its pipeline sends the one
    confirmation, with no marketing): we send nothing ourselves. An opt-out from a number
    whose earlier opt-out is still in force says "I still get messages": recorded on that
    request (staff are alerted) and answered once a day; the new ask is filed all the same."""
    tenant, digest = message.tenant, message.from_hash
    earlier = selectors.latest_request(tenant=tenant, phone_hash=digest)  # a first opt-out: one look-up
    in_force = (
        earlier is not None
        and earlier.state != UnsubscribeRequest.State.NEEDS_ATTENTION
        and not selectors.lifted_since(tenant=tenant, phone_hash=digest, since=earlier.received_at)
        and selectors.number_suppressed(tenant=tenant, phone_hash=digest)
    )
    try:
        filed = unsubscribe_request_create(
            tenant=message.tenant,
            phone=e164,
            channel=RequestChannel.SMS,
            verification_method=VerificationMethod.SMS_ORIGIN,
            verification_evidence=_evidence(message),
            services=_scope(message),
            language=message.language,
            filed_by=f"reply SMS via {message.provider}",
            setting=setting,
            phone_normalised=True,
            plan_later=True,  # the gateway waits: steps, deadlines and events follow in the pipeline
        )
    except UnsubscribeError as exc:  # the core refused it (a route's service since removed, say)
        _hold(message, exc.message)
        return
    message.request = filed.request
    message.action = Action.UNSUBSCRIBE
    if in_force and earlier is not None:
        report = still_receiving_report(
            tenant=message.tenant, request=earlier, channel=StillReceivingReport.Channel.SMS
        )
        if report.created:
            context: dict[str, object] = {
                "reference": earlier.reference,
                "status_url": links.status_url(earlier),
            }
            _reply(
                message, e164, "still_receiving", context, dedupe_key=f"still-receiving:{report.report.pk}"
            )


def _keywords(setting: ChannelSetting, language: str) -> str:
    """The reply keywords this tenant advertises, in the reply's language ("TD/退订")."""
    return "/".join(sms_keywords(setting.keywords(), language))


def _resubscribe(message: InboundMessage, e164: str, setting: ChannelSetting) -> None:
    """Lift the opt-out the reply is about: a route's service only, unless the words say
    "resume everything" (恢复全部, resume all); a reply with no service route resumes
    everything, as a TD there stops everything."""
    service = message.route.service if message.route else None
    everything = service is None or bool(RESUME_EVERYTHING.search(normalise(message.body)))
    evidence = {
        **_evidence(message),
        "inbound_reference": message.reference,
        "text": mask_digit_runs(message.body)[:500],
    }
    try:
        lift = suppression_lift(
            tenant=message.tenant,
            phone=e164,
            channel=RequestChannel.SMS,
            verification_method=VerificationMethod.SMS_ORIGIN,
            evidence=evidence,
            services=None if everything or service is None else [service.code],
            phone_normalised=True,
        )
    except ResubscribeRefused:
        message.action = Action.RESUBSCRIBE_REFUSED
        _reply(message, e164, "resubscribe_refused", {"reference": message.reference})
        return
    except UnsubscribeError as exc:
        _hold(message, exc.message)
        return
    message.action = Action.RESUBSCRIBE
    message.note = _(
        "Lifted: %(lifted)s. Still suppressed: %(kept)s. Subscriptions reactivated: %(count)d."
    ) % {
        "lifted": ", ".join(lift.lifted) or "—",
        "kept": ", ".join(lift.still_suppressed) or "—",
        "count": lift.reactivated,
    }
    keywords = _keywords(setting, message.language)
    if SCOPE_ALL in lift.still_suppressed:
        # One service asked for while everything is stopped: say what it takes.
        _reply(message, e164, "resubscribe_all_needed", {"reference": message.reference})
        return
    if not lift.lifted:
        # Nothing was stopped (or it was lifted already): no "subscribed again" text;
        # the person gets their real status instead.
        _send_status(message, e164, setting)
        message.note = _("Nothing to lift: no opt-out of what this reply asks to resume.")
        return
    _reply(
        message,
        e164,
        "resubscribed",
        {
            "reference": message.reference,
            "keywords": keywords,
            "services": _resumed_words(message, lift.lifted),
        },
    )


def _resumed_words(message: InboundMessage, lifted: list[str]) -> str:
    """What the person is subscribed to again, in their language: all marketing when
    the all-marketing opt-out went, else the names of the services lifted."""
    words = scope_words(message.language)
    if SCOPE_ALL in lifted:
        return words.all_marketing
    names = Service.objects.for_tenant(message.tenant).filter(code__in=lifted).order_by("name")
    return words.separator.join(names.values_list("name", flat=True)) or words.chosen


def _send_help(message: InboundMessage, e164: str, setting: ChannelSetting) -> None:
    # The tenant's own help text is its "help" template (notifications admin).
    message.action = Action.HELP
    _reply(message, e164, "help", {"keywords": _keywords(setting, message.language)})


# The state of a request in words, per language (like notifications.defaults: built in).
STATE_WORDS: dict[str, dict[str, str]] = {
    "zh-hans": {
        "active": "已生效，不再发送营销信息，正在处理中",
        "completed": "已完成",
        "lifted": "您之后已重新订阅",
        "active_no_record": "已生效，不再发送营销信息",
    },
    "en": {
        "active": "in effect, no more marketing; still being processed",
        "completed": "completed",
        "lifted": "you re-subscribed since",
        "active_no_record": "in effect, no more marketing",
    },
}


def _send_status(message: InboundMessage, e164: str, setting: ChannelSetting) -> None:
    """A status question: that number's real status at this tenant. Nothing is filed."""
    message.action = Action.STATUS
    found = selectors.number_status(tenant=message.tenant, phone_hash=message.from_hash)
    request = found.request
    words = STATE_WORDS.get(message.language, STATE_WORDS["en"])
    zone = zoneinfo.ZoneInfo(message.tenant.time_zone)
    if request is None and found.suppressed_since is not None:
        # The request's record is past its retention; the opt-out itself stands.
        since = timezone.localtime(found.suppressed_since, zone).strftime("%Y-%m-%d %H:%M")
        purged: dict[str, object] = {"reference": "—", "state": words["active_no_record"], "date": since}
        _reply(message, e164, "status", purged)  # status_url: the tenant's status page
        return
    if request is None:
        _reply(message, e164, "status_none", {"keywords": _keywords(setting, message.language)})
        return
    if found.lifted_after:
        state = words["lifted"]
    elif request.state == UnsubscribeRequest.State.COMPLETED:
        state = words["completed"]
    else:
        state = words["active"]
    local = timezone.localtime(request.received_at, zone)
    context: dict[str, object] = {
        "reference": request.reference,
        "state": state,
        "date": local.strftime("%Y-%m-%d %H:%M"),
        "status_url": links.status_url(request),
    }
    _reply(message, e164, "status", context)


def _clarify(message: InboundMessage, e164: str, setting: ChannelSetting) -> None:
    since = timezone.now() - CLARIFY_WINDOW
    if selectors.clarification_sent_since(tenant=message.tenant, from_hash=message.from_hash, since=since):
        message.action = Action.CLARIFY_SKIPPED
        return
    message.action = Action.CLARIFY
    # The dedupe key also holds when two unclear replies from one number race each other.
    day = timezone.now().date().isoformat()
    _reply(
        message,
        e164,
        "clarify",
        {"keywords": _keywords(setting, message.language)},
        dedupe_key=f"inbound-clarify:{message.from_hash}:{day}",
    )


def _reply(
    message: InboundMessage,
    e164: str,
    event: str,
    context: dict[str, object],
    dedupe_key: str | None = None,
) -> None:
    """Queue a reply (sent after commit). A reply that cannot be rendered (a tenant
    template needing a variable we do not have) must not undo what the reply SMS
    caused: it is caught in its own savepoint and flagged."""
    try:
        with transaction.atomic():
            notification_send(
                tenant=message.tenant,
                event=event,
                to=e164,
                channel="sms",
                language=message.language,
                context=context,
                dedupe_key=dedupe_key or f"inbound:{message.pk}:{event}",
            )
    except ValueError as exc:
        logger.warning("reply %s to %s could not be queued: %s", event, message.from_masked, exc)
        message.flagged_for_attention = True
        message.flag_reason = _("The %(event)s reply could not be sent: %(error)s") % {
            "event": event,
            "error": exc,
        }


# --- staff ----------------------------------------------------------------------------------


def inbound_message_file_request(*, message: InboundMessage, acting_user: Any) -> UnsubscribeRequest:
    """Staff file the unsubscribe request a held reply asked for (admin action).

    Goes through the core service with channel sms and the message as evidence, so the
    request reads exactly as if the webhook had filed it, plus who filed it. Returns the
    request already linked when there is one. Raises UnsubscribeError (message safe to
    show), including the core's ChannelDisabled while the tenant's SMS channel is off.
    """
    with transaction.atomic():
        # No select_related: PostgreSQL cannot lock the nullable side of an outer join.
        locked = InboundMessage.objects.for_tenant(message.tenant_id).select_for_update().get(pk=message.pk)
        if locked.request is not None:
            return locked.request
        if not locked.from_number:
            raise InboundError(_("The number of this reply was erased; it cannot be filed any more."))
        try:
            e164 = phones.normalise(locked.from_number)
        except phones.InvalidPhoneNumber:
            raise InboundError(_("The sender is not a valid phone number.")) from None
        filed = unsubscribe_request_create(
            tenant=locked.tenant,
            phone=e164,
            channel=RequestChannel.SMS,
            verification_method=VerificationMethod.SMS_ORIGIN,
            verification_evidence={**_evidence(locked), "filed_by": acting_user.get_username()},
            services=_scope(locked),
            language=locked.language or None,
            filed_by=f"staff {acting_user.get_username()} (held reply SMS)",
            allow_disabled_channel=True,
        )
        locked.request = filed.request
        locked.action = Action.UNSUBSCRIBE
        locked.flagged_for_attention = False
        note = _("Filed as %(reference)s by %(user)s.") % {
            "reference": filed.request.reference,
            "user": acting_user.get_username(),
        }
        locked.flag_reason = f"{locked.flag_reason} {note}".strip()
        # Filed: the request holds the number now; the reply keeps hash, mask and wording.
        locked.from_number = ""
        locked.body = mask_digit_runs(locked.body)
        locked.save(
            update_fields=["request", "action", "flagged_for_attention", "flag_reason", "from_number", "body"]
        )
    return filed.request


def inbound_credential_set(
    *, tenant: Tenant, provider: str, secret: str | None = None, enabled: bool = True
) -> InboundCredential:
    """Create or update a tenant's credential for a provider. `secret` None keeps the
    stored one (a new credential needs one)."""
    if provider not in Provider.values:
        raise ValueError(f"unknown provider {provider!r}")
    with transaction.atomic():
        credential = (
            InboundCredential.objects.for_tenant(tenant).select_for_update().filter(provider=provider).first()
        )
        if credential is None:
            if not secret:
                raise ValueError(f"{provider} is not configured for {tenant.slug} yet: give its secret")
            credential = InboundCredential(tenant=tenant, provider=provider)
        if secret:
            credential.secret = secret
        credential.enabled = enabled
        credential.save()
    return credential


# --- which tenant: shared gateways and misrouted replies ------------------------------------


def tenant_reply_receive(
    *,
    tenant: Tenant,
    provider: str,
    message_id: str,
    from_number: str,
    to: str,
    body: str,
    received_at: datetime | None = None,
    sign_name: str = "",
) -> Received:
    """A reply posted to a tenant's own URL (/hooks/sms/<slug>/<provider>/).

    When its destination is not the tenant's but another tenant's (a shared gateway
    posting to the wrong URL), it is stored as an UnroutedMessage and flagged for
    staff, never filed under the tenant whose URL it came to.
    """
    if provider not in Provider.values:
        raise ValueError(f"unknown provider {provider!r}")
    message_id = _message_id_checked(message_id)
    existing = _stored(tenant, provider, message_id)
    if existing is not None:
        return Received(existing.provider_message_id, existing.action)
    if to and not selectors.tenant_owns_destination(tenant=tenant, to=to, sign_name=sign_name):
        routing = selectors.tenant_for_reply(to=to, sign_name=sign_name)
        if routing.tenant is not None and routing.tenant.pk != tenant.pk:
            unrouted = unrouted_message_store(
                source=f"tenant:{tenant.slug}",
                reason=UnroutedMessage.Reason.OTHER_TENANT,
                provider=provider,
                message_id=message_id,
                from_number=from_number,
                to=to,
                body=body,
                received_at=received_at,
                sign_name=sign_name,
                received_by=tenant,
                belongs_to=routing.tenant,
                help_from=tenant,
            )
            return Received(unrouted.provider_message_id, "unrouted")
    message = _new_message_receive(
        tenant=tenant,
        provider=provider,
        message_id=message_id,
        from_number=from_number,
        to=to,
        body=body,
        received_at=received_at,
        sign_name=sign_name,
        gateway_account=None,
    )
    return Received(message.provider_message_id, message.action)


def platform_reply_receive(
    *,
    account: PlatformInboundCredential,
    message_id: str,
    from_number: str,
    to: str,
    body: str,
    received_at: datetime | None = None,
    sign_name: str = "",
) -> Received:
    """A reply through a shared gateway (/hooks/sms/platform/<account>/<provider>/):
    routed to the one tenant its destination or sign name belongs to, else stored as
    unroutable, flagged for staff and answered with the platform's help text."""
    served = list(account.tenants.values_list("pk", flat=True))
    routing = selectors.tenant_for_reply(to=to, sign_name=sign_name, among=served or None)
    if routing.tenant is not None:
        message = inbound_message_receive(
            tenant=routing.tenant,
            provider=account.provider,
            message_id=message_id,
            from_number=from_number,
            to=to,
            body=body,
            received_at=received_at,
            sign_name=sign_name,
            gateway_account=account,
        )
        return Received(message.provider_message_id, message.action)
    unrouted = unrouted_message_store(
        source=f"platform:{account.account}",
        reason=UnroutedMessage.Reason.AMBIGUOUS if routing.candidates else UnroutedMessage.Reason.NO_MATCH,
        provider=account.provider,
        message_id=message_id,
        from_number=from_number,
        to=to,
        body=body,
        received_at=received_at,
        sign_name=sign_name,
        gateway_account=account,
        answer_with=account.reply_tenant,
    )
    return Received(unrouted.provider_message_id, "unrouted")


def unrouted_message_store(
    *,
    source: str,
    reason: str,
    provider: str,
    message_id: str,
    from_number: str,
    to: str,
    body: str,
    received_at: datetime | None = None,
    sign_name: str = "",
    gateway_account: PlatformInboundCredential | None = None,
    received_by: Tenant | None = None,
    belongs_to: Tenant | None = None,
    answer_with: Tenant | None = None,
    help_from: Tenant | None = None,
) -> UnroutedMessage:
    """Keep a reply no tenant can be given, flagged for staff; a retry returns the first
    row. `answer_with`: the tenant whose gateway sends the platform's help text.

    `help_from`: a reply to another tenant's number posted to this tenant's URL. It is
    never filed anywhere (the gateway that posted it proved itself to this tenant only,
    so filing it under the tenant the number belongs to would trust a claim nobody
    checked), but the person is not left in silence either: unless it is plainly chit-chat
    they get this tenant's own help text (how to opt out, its page), and staff see the
    flagged row (admin home, unroutable replies)."""
    message_id = _message_id_checked(message_id)

    def stored() -> UnroutedMessage | None:
        return UnroutedMessage.objects.filter(
            source=source, provider=provider, provider_message_id=message_id
        ).first()

    existing = stored()
    if existing is not None:
        return existing
    e164, sender = _sender(from_number)
    language = guess_language(body, number=e164, default=settings.LANGUAGE_CODE.lower())
    with transaction.atomic():
        try:
            with transaction.atomic():
                unrouted = UnroutedMessage.objects.create(
                    source=source[:80],
                    gateway_account=gateway_account,
                    received_by=received_by,
                    belongs_to=belongs_to,
                    reason=reason,
                    provider=provider,
                    provider_message_id=message_id,
                    from_number=sender,
                    # Platform-level (no tenant yet): the platform digest, never shown to a tenant.
                    from_hash=phones.platform_phone_hash(sender),
                    from_masked=phones.mask(sender),
                    to=(to or "").strip()[:64],
                    sign_name=(sign_name or "").strip()[:100],
                    body=body or "",
                    language=language,
                    intent=classify(body or "").intent,
                    received_at=received_at or timezone.now(),
                )
        except IntegrityError:
            winner = stored()
            if winner is None:
                raise
            return winner
        if e164 is not None:
            _unrouted_answer(
                unrouted, e164=e164, language=language, answer_with=answer_with, help_from=help_from
            )
    logger.warning(
        "reply SMS %s/%s from %s to %s could not be routed (%s, via %s)",
        provider,
        message_id,
        unrouted.from_masked,
        unrouted.to or unrouted.sign_name or "-",
        reason,
        source,
    )
    return unrouted


def _unrouted_answer(
    unrouted: UnroutedMessage,
    *,
    e164: str,
    language: str,
    answer_with: Tenant | None,
    help_from: Tenant | None,
) -> None:
    """Queue the help text an unroutable reply gets, if any (see unrouted_message_store)."""
    if answer_with is not None:
        tenant, event, what = answer_with, "unrouted_help", "unroutable"
        context: dict[str, object] = {"hub_url": settings.PUBLIC_BASE_URL + reverse("optout-hub")}
    elif help_from is not None and unrouted.intent != Intent.OTHER:
        tenant, event, what = help_from, "help", "misrouted"
        keywords = selectors.sms_setting(tenant=help_from).keywords()
        context = {"keywords": "/".join(sms_keywords(keywords, language))}
    else:
        return
    try:
        with transaction.atomic():
            notification_send(
                tenant=tenant,
                event=event,
                to=e164,
                channel="sms",
                language=language,
                context=context,
                dedupe_key=f"unrouted:{unrouted.pk}",
            )
    except ValueError as exc:
        logger.warning("help for %s reply %s not queued: %s", what, unrouted.pk, exc)
    else:
        unrouted.answered = True
        unrouted.save(update_fields=["answered"])


def unrouted_message_mark_handled(*, message: UnroutedMessage, acting_user: Any) -> UnroutedMessage:
    """Staff dealt with it (filed it at the right tenant, or found nothing to do): the raw
    number goes, digit runs in the text are masked, the flag is cleared."""
    with transaction.atomic():
        locked = UnroutedMessage.objects.select_for_update().get(pk=message.pk)
        if locked.handled_at is None:
            locked.from_number = ""
            locked.body = mask_digit_runs(locked.body)
            locked.flagged_for_attention = False
            locked.handled_at = timezone.now()
            locked.handled_by = acting_user.get_username()[:150]
            locked.save()
    return locked


def platform_credential_set(
    *,
    account: str,
    provider: str | None = None,
    secret: str | None = None,
    enabled: bool = True,
    tenants: list[Tenant] | None = None,
    reply_tenant: Tenant | None = None,
) -> PlatformInboundCredential:
    """Create or update a shared gateway account. `secret` None keeps the stored one;
    `tenants` None keeps the served tenants ([] serves any); `reply_tenant` None keeps it."""
    with transaction.atomic():
        credential = PlatformInboundCredential.objects.select_for_update().filter(account=account).first()
        if credential is None:
            if provider not in Provider.values:
                raise ValueError(f"unknown provider {provider!r}")
            if not secret:
                raise ValueError(f"the shared gateway {account} is not configured yet: give its secret")
            credential = PlatformInboundCredential(account=account, provider=provider)
        elif provider and provider != credential.provider:
            raise ValueError(f"{account} is a {credential.provider} account, not {provider}")
        if secret:
            credential.secret = secret
        credential.enabled = enabled
        if reply_tenant is not None:
            credential.reply_tenant = reply_tenant
        credential.full_clean(exclude=["tenants"])
        credential.save()
        if tenants is not None:
            credential.tenants.set(tenants)
    return credential


# --- erasure --------------------------------------------------------------------------------


def inbound_messages_erase_number(request: UnsubscribeRequest) -> int:
    """Registered as the "inbound.messages" data source (an erase step): the raw number
    of every reply from this number, and every number in their texts. The wording stays (digit runs masked): it is the evidence."""
    cleared = 0
    mine = InboundMessage.objects.for_tenant(request.tenant_id)
    for pk, number, body in mine.filter(from_hash=request.phone_hash).values_list(
        "pk", "from_number", "body"
    ):
        masked = mask_digit_runs(body)
        if number or masked != body:
            mine.filter(pk=pk).update(from_number="", body=masked)
            cleared += 1
    # The person's replies nobody could be given: erased with the rest of their data. They
    # are platform-level, so they keep the platform digest (the request still holds the number:
    # erase steps run before completion blanks it).
    if not request.phone:
        return cleared
    unrouted = UnroutedMessage.objects.filter(from_hash=phones.platform_phone_hash(request.phone))
    for pk, number, body in unrouted.values_list("pk", "from_number", "body"):
        masked = mask_digit_runs(body)
        if number or masked != body:
            UnroutedMessage.objects.filter(pk=pk).update(from_number="", body=masked)
            cleared += 1
    return cleared


def inbound_numbers_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic (Celery beat, daily): the raw numbers nobody needs any more.

    - an unroutable reply keeps its raw number LANZUAN_UNROUTED_NUMBER_DAYS for staff
      to file it at the right tenant, then only hash, mask and masked text stay (the
      row and its flag stay: staff still see what was asked);
    - a held or flagged reply keeps it until the tenant's deadline for acting on it
      (received + SLA hours + erasure delay), then likewise;
    - a handled reply that still has one (stored before numbers were dropped at once)
      loses it now.
    """
    now = now or timezone.now()
    cleared = {"unrouted": 0, "inbound": 0}
    cutoff = now - timedelta(days=settings.LANZUAN_UNROUTED_NUMBER_DAYS)
    for pk, body in (
        UnroutedMessage.objects.exclude(from_number="")
        .filter(created_at__lt=cutoff)
        .values_list("pk", "body")
    ):
        UnroutedMessage.objects.filter(pk=pk).update(from_number="", body=mask_digit_runs(body))
        cleared["unrouted"] += 1
    kept = (
        InboundMessage.objects.unscoped(reason="retention clears every tenant's stored numbers")
        .exclude(from_number="")
        .select_related("tenant")
    )
    # Timed from when we stored it: a gateway's own received time may be anything.
    for message in kept.only("pk", "body", "action", "flagged_for_attention", "created_at", "tenant"):
        waiting = message.action == Action.HELD or message.flagged_for_attention
        if waiting:
            hours = message.tenant.sla_hours + message.tenant.erasure_delay_hours
            if message.created_at + timedelta(hours=hours) > now:
                continue
        InboundMessage.objects.for_tenant(message.tenant_id).filter(pk=message.pk).update(
            from_number="", body=mask_digit_runs(message.body)
        )
        cleared["inbound"] += 1
    return cleared
