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
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications.services import notification_send
from tenants.models import Tenant
from unsubscribe import phones
from unsubscribe.errors import ResubscribeRefused, UnsubscribeError
from unsubscribe.intent import classify
from unsubscribe.models import Channel, UnsubscribeRequest, VerificationMethod
from unsubscribe.references import new_reference
from unsubscribe.selectors import channel_setting
from unsubscribe.services import resubscribe, unsubscribe_request_create

from . import selectors
from .models import Action, InboundCredential, InboundMessage, Intent, Provider

logger = logging.getLogger(__name__)

CLARIFY_WINDOW = timedelta(hours=24)
ERASED_BODY = "[erased]"

# Ideographs, CJK punctuation and full-width forms ("ＴＤ", "？" typed on a Chinese keyboard).
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60]")
_ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")


class InboundError(UnsubscribeError):
    """A staff action on a stored reply cannot be done; the message is safe to show."""

    code = "inbound_error"


def guess_language(text: str, default: str) -> str:
    """The language to answer in: Chinese characters → zh-hans, an English word → en.

    Anything else ("TD", "T", "R", "?") keeps the tenant's language: those are the
    Chinese carriers' opt-out codes, so answering them in English would be a guess
    against the likelier reader.
    """
    if _CJK.search(text or ""):
        return "zh-hans"
    if _ENGLISH_WORD.search(text or ""):
        return "en"
    return default


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
) -> InboundMessage:
    """Store one reply and do what it asks, atomically; return the stored row.

    The same (tenant, provider, message_id) again returns the first row untouched.
    Raises ValueError for an unknown provider or an empty message id (the views
    answer 400 before that can happen).
    """
    if provider not in Provider.values:
        raise ValueError(f"unknown provider {provider!r}")
    message_id = str(message_id).strip()
    if not message_id or len(message_id) > 100:
        raise ValueError("a provider message id of 1 to 100 characters is required")

    def stored() -> InboundMessage | None:
        return (
            InboundMessage.objects.for_tenant(tenant)
            .filter(provider=provider, provider_message_id=message_id)
            .first()
        )

    existing = stored()
    if existing is not None:
        return existing

    raw_from = (from_number or "").strip()[:32]
    try:
        e164: str | None = phones.normalise(raw_from)
    except phones.InvalidPhoneNumber:
        e164 = None  # kept and flagged below; an alphanumeric sender cannot be acted on
    sender = e164 or raw_from
    setting = channel_setting(tenant=tenant, channel=Channel.SMS)
    result = classify(body or "", extra_unsubscribe_keywords=setting.keywords())
    route = selectors.reply_route_for(tenant=tenant, to=to, sign_name=sign_name)

    with transaction.atomic():
        try:
            # The row goes in first, in a savepoint: a concurrent delivery of the same
            # message blocks here on the unique constraint until the first commits, then
            # fails, and finds the first row instead of filing a second request.
            with transaction.atomic():
                message = InboundMessage.objects.create(
                    tenant=tenant,
                    provider=provider,
                    provider_message_id=message_id,
                    reference=new_reference(),
                    from_number=sender,
                    from_hash=phones.phone_hash(sender),
                    from_masked=phones.mask(sender),
                    to=(to or "").strip()[:64],
                    sign_name=(sign_name or "").strip()[:100],
                    body=body or "",
                    received_at=received_at or timezone.now(),
                    language=guess_language(body, tenant.default_language),
                    intent=result.intent,
                    confidence=round(result.confidence, 3),
                    matched_rule=result.matched[:300],
                    route=route,
                )
        except IntegrityError:
            winner = stored()
            if winner is None:
                raise
            return winner

        if not setting.enabled:
            if result.intent in (Intent.UNSUBSCRIBE, Intent.RESUBSCRIBE):
                _hold(
                    message,
                    _(
                        "The SMS channel is switched off, so this reply was not acted on. "
                        "Read it and act for the person (File unsubscribe request)."
                    ),
                )
        elif e164 is None:
            if result.intent in (Intent.UNSUBSCRIBE, Intent.RESUBSCRIBE):
                _hold(
                    message, _("The sender is not a valid phone number, so the reply could not be acted on.")
                )
        elif result.action == "unsubscribe":
            _file_request(message, e164)
        elif result.action == "resubscribe":
            _resubscribe(message, e164)
        elif result.action == "help":
            _send_help(message, e164)
        elif result.action == "clarify":
            _clarify(message, e164)
        message.save()

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


# --- what each intent does (inside the caller's transaction) -------------------------------


def _hold(message: InboundMessage, reason: str) -> None:
    message.action = Action.HELD
    message.flagged_for_attention = True
    message.flag_reason = reason


def _scope(message: InboundMessage) -> list[str] | None:
    service = message.route.service if message.route else None
    return [service.code] if service is not None else None


def _evidence(message: InboundMessage) -> dict[str, Any]:
    return {"provider": message.provider, "message_id": message.provider_message_id, "to": message.to}


def _file_request(message: InboundMessage, e164: str) -> None:
    """The core files, suppresses and later confirms (its pipeline sends the one
    confirmation, with no marketing): we send nothing ourselves."""
    try:
        filed = unsubscribe_request_create(
            tenant=message.tenant,
            phone=e164,
            channel=Channel.SMS,
            verification_method=VerificationMethod.SMS_ORIGIN,
            verification_evidence=_evidence(message),
            services=_scope(message),
            language=message.language,
            filed_by=f"reply SMS via {message.provider}",
        )
    except UnsubscribeError as exc:  # the channel was switched off a moment ago, or similar
        _hold(message, exc.message)
        return
    message.request = filed.request
    message.action = Action.UNSUBSCRIBE


def _resubscribe(message: InboundMessage, e164: str) -> None:
    try:
        resubscribe(tenant=message.tenant, phone=e164, channel=Channel.SMS, services=_scope(message))
    except ResubscribeRefused:
        message.action = Action.RESUBSCRIBE_REFUSED
        _reply(message, e164, "resubscribe_refused", {"reference": message.reference})
        return
    except UnsubscribeError as exc:
        _hold(message, exc.message)
        return
    message.action = Action.RESUBSCRIBE
    _reply(message, e164, "resubscribed", {"reference": message.reference})


def _send_help(message: InboundMessage, e164: str) -> None:
    # The tenant's own help text is its "help" template (notifications admin).
    message.action = Action.HELP
    _reply(message, e164, "help", {})


def _clarify(message: InboundMessage, e164: str) -> None:
    since = timezone.now() - CLARIFY_WINDOW
    if selectors.clarification_sent_since(tenant=message.tenant, from_hash=message.from_hash, since=since):
        message.action = Action.CLARIFY_SKIPPED
        return
    message.action = Action.CLARIFY
    # The dedupe key also holds when two unclear replies from one number race each other.
    day = timezone.now().date().isoformat()
    _reply(message, e164, "clarify", {}, dedupe_key=f"inbound-clarify:{message.from_hash}:{day}")


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
            channel=Channel.SMS,
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
        locked.save(update_fields=["request", "action", "flagged_for_attention", "flag_reason"])
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


# --- erasure --------------------------------------------------------------------------------


def inbound_messages_scrub(request: UnsubscribeRequest) -> str:
    """Registered scrubber: the raw number and the text of every reply from this number."""
    cleared = (
        InboundMessage.objects.for_tenant(request.tenant_id)
        .filter(from_hash=request.phone_hash)
        .exclude(from_number="", body=ERASED_BODY)
        .update(from_number="", body=ERASED_BODY)
    )
    return f"cleared {cleared} inbound message(s)"
