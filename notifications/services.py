"""State changes for outgoing messages: create, deliver, fail, status reports, erasure.

Rules kept here, in one place:
- At most one message per (tenant, dedupe_key), and one send at a time per message:
  a worker claims the row with a conditional UPDATE before calling the gateway, and
  a message that is sent, delivered or failed is never sent again by a worker (only
  by staff, message_retry).
- A claim older than CLAIM_LEASE belongs to a worker that died while calling the
  gateway. The message is not given up: the next try (the sweep's, or the confirm
  step's) claims it again and sends it once more, within the message's MAX_ATTEMPTS,
  as the same message to the provider: its idempotency key where the gateway has one,
  a look-up of what the provider already took where it can be asked (gateways.py,
  `resend_guard`). So the person gets it once in effect, or at worst twice on a
  gateway that can do neither; never not at all while attempts remain.
- The raw recipient stays only while the message may still be sent.
- One-time codes never reach the database: the stored body and variables carry
  ****** instead; the clear text waits in the cache for as long as the code is valid.
- The gateway is called outside any transaction (it is not rollback-safe): do not
  call message_deliver() inside transaction.atomic().
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from lanzuan.backoff import backoff_seconds
from lanzuan.dispatch import dispatch_or_leave_for_sweep
from lanzuan.phones import redact
from tenants.models import Tenant

from . import selectors, tasks  # tasks imports this module: by module, not by name
from .catalogue import EVENT_VARIABLES, REDACTED, SECRET_VARIABLES, MessageChannel, language_for, tenant_links
from .defaults import scope_words
from .gateways import (
    HTTP_TIMEOUT,
    INLINE_TIMEOUT,
    Gateway,
    GatewayError,
    GatewayResult,
    OutgoingMessage,
    PermanentGatewayError,
    Timeout,
    TransientGatewayError,
    file_gateway_allowed,
    gateway_for,
)
from .models import GatewayConfig, Message, Template
from .rendering import render

logger = logging.getLogger(__name__)
Status = Message.Status

MAX_ATTEMPTS = 5
# Every gateway call is bounded by its timeouts (well under a minute), so a claim
# older than this belongs to a worker that died while calling the gateway.
CLAIM_LEASE = timedelta(minutes=5)
# A claim younger than this is a worker sending right now; one that old is probably a
# worker that died, and is looked at again when its lease ends.
CLAIM_BUSY = timedelta(seconds=30)
# How long the clear text of an OTP message may wait to be sent: the code's validity.
SECRET_TTL_SECONDS = 5 * 60
RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 30 * 60


class MessageInFlight(TransientGatewayError):
    """Another worker holds the message's claim: it is being sent, or its worker died and
    the claim ends at `retry_at`. Look again then; nothing was sent by this call."""

    def __init__(self, text: str, *, claimed_at: datetime) -> None:
        super().__init__(text)
        self.claimed_at = claimed_at

    @property
    def retry_at(self) -> datetime:
        return claim_look_again_at(self.claimed_at)


def claim_look_again_at(claimed_at: datetime) -> datetime:
    """When to look at a claimed message again: soon while its worker is probably still
    sending (CLAIM_BUSY), else when its lease ends and the claim can be taken over."""
    busy_until = claimed_at + CLAIM_BUSY
    return busy_until if timezone.now() < busy_until else claimed_at + CLAIM_LEASE


def retry_delay(attempts: int) -> float:
    """15–30 s, 30–60 s, 60–120 s, … after `attempts` failed tries."""
    return backoff_seconds(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)


# --- recipients -----------------------------------------------------------------------


def _recipient(to: str, channel: str, tenant_id: int) -> tuple[str, str, str]:
    """(normalised recipient, the tenant's digest of it, its masked form); ValueError when invalid."""
    if channel == MessageChannel.EMAIL:
        address = (to or "").strip()
        local, _at, domain = address.rpartition("@")
        if not local or not domain or "." not in domain or any(ch.isspace() for ch in address):
            raise ValueError(f"not an email address: {mask_email(address)!r}")
        return address, phones.tenant_phone_hash(tenant_id, address.lower()), mask_email(address)
    # SMS and app push are addressed by the phone number.
    e164 = phones.normalise(to)
    return e164, phones.tenant_phone_hash(tenant_id, e164), phones.mask(e164)


def mask_email(address: str) -> str:
    """'alice@example.com' → 'a***@example.com'."""
    local, _at, domain = address.rpartition("@")
    if not local:
        return "***"
    return f"{local[0]}***@{domain}"


# The reply keywords a tenant advertises ("TD/退订") are the core's configuration (its SMS
# channel setting), and the core sits above this app: it registers how to read them at
# start-up (unsubscribe/apps.py) instead of being imported here.
ReplyKeywords = Callable[[Tenant, str], str]
_reply_keywords_lookup: list[ReplyKeywords] = []


def reply_keywords_register(lookup: ReplyKeywords) -> None:
    """How to read a tenant's reply keywords in a language; the last one registered wins."""
    _reply_keywords_lookup[:] = [lookup]


def _reply_keywords(tenant: Tenant, language: str) -> str:
    """The reply keywords the tenant advertises ("TD/退订"), when a caller gives none."""
    return _reply_keywords_lookup[0](tenant, language) if _reply_keywords_lookup else ""


def _cache_key(secret_ref: str) -> str:
    return f"notifications:secret-message:{secret_ref}"


# --- templates ------------------------------------------------------------------------


def template_save(
    *,
    tenant: Tenant,
    event: str,
    channel: str,
    language: str,
    body: str,
    subject: str = "",
    template: Template | None = None,
) -> Template:
    """Create or change a tenant's text for one event, channel and language.

    Raises ValidationError (messages in the active language) for bad syntax, unknown
    variables, or marketing in a confirmation or clarification (links other than the
    variables, offers, discounts, coupons, prices). `template` is the row to change;
    it must belong to `tenant`."""
    if template is not None and template.pk and template.tenant_id != tenant.pk:
        raise ValueError("the template belongs to another tenant")
    row = template or Template()
    row.tenant = tenant
    row.event, row.channel, row.language = event, channel, language
    row.subject, row.body = subject, body
    row.full_clean()
    row.save()
    return row


# --- create ---------------------------------------------------------------------------


def message_create(
    *,
    tenant: Tenant,
    event: str,
    to: str,
    channel: str = "sms",
    language: str | None = None,
    context: dict[str, object],
    dedupe_key: str | None = None,
) -> Message:
    """Render the template (tenant override or default; language defaults to tenant.default_language),
    create a queued Message. Idempotent by (tenant, dedupe_key): returns the existing message.
    Adds tenant_name to the context automatically. Raises ValueError on unknown event,
    an invalid recipient, or a variable the text needs that the context does not give."""
    if event not in EVENT_VARIABLES:
        raise ValueError(f"unknown event {event!r}")
    if channel not in MessageChannel.values:
        raise ValueError(f"unknown channel {channel!r}")
    if dedupe_key:
        existing = Message.objects.for_tenant(tenant).filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing

    recipient, to_hash, to_masked = _recipient(to, channel, tenant.pk)
    language = language_for(language, tenant.default_language)
    allowed = EVENT_VARIABLES[event]
    words = scope_words(language)
    fallbacks = {
        **tenant_links(tenant.slug),
        "stopped": words.chosen,
        "continuing": words.others,
        "services": words.chosen,  # a re-subscribe caller names what resumed; true in any case
    }
    values = {
        **{key: value for key, value in fallbacks.items() if key in allowed},
        **({"keywords": _reply_keywords(tenant, language)} if "keywords" in allowed else {}),
        **{key: str(value) for key, value in context.items() if key in allowed},
        "tenant_name": tenant.name,
    }
    resolved = selectors.template_resolve(tenant=tenant, event=event, channel=channel, language=language)
    subject_text = "" if channel == MessageChannel.SMS else resolved.subject
    subject, body = render(subject_text, values), render(resolved.body, values)

    secret_names = SECRET_VARIABLES & values.keys()
    stored_values, stored_subject, stored_body, secret_ref = values, subject, body, ""
    if secret_names:
        stored_values = {**values, **dict.fromkeys(secret_names, REDACTED)}
        stored_subject = render(subject_text, stored_values)
        stored_body = render(resolved.body, stored_values)
        secret_ref = secrets.token_urlsafe(24)
        cache.set(
            _cache_key(secret_ref),
            {"subject": subject, "body": body, "variables": values},
            timeout=SECRET_TTL_SECONDS,
        )

    try:
        with transaction.atomic():
            return Message.objects.create(
                tenant=tenant,
                channel=channel,
                event=event,
                language=language,
                template=resolved.template,
                to=recipient,
                to_hash=to_hash,
                to_masked=to_masked,
                subject=stored_subject,
                body=stored_body,
                context=stored_values,
                dedupe_key=dedupe_key or None,
                secret_ref=secret_ref,
            )
    except IntegrityError:
        if not dedupe_key:
            raise
        # Another worker created it between our read and our insert.
        return Message.objects.for_tenant(tenant).get(dedupe_key=dedupe_key)


# --- deliver --------------------------------------------------------------------------


def _status_callback_url(kind: str) -> str:
    if kind != GatewayConfig.Kind.TWILIO:
        return ""
    try:
        return settings.PUBLIC_BASE_URL + reverse("notifications:twilio-status")
    except NoReverseMatch:
        logger.warning("notifications.urls is not included; Twilio delivery reports are off")
        return ""


def _outgoing(message: Message) -> OutgoingMessage:
    subject, body, variables = message.subject, message.body, dict(message.context)
    if message.secret_ref:
        clear = cache.get(_cache_key(message.secret_ref))
        if not clear:
            raise PermanentGatewayError("the one-time code expired before it could be sent")
        subject, body, variables = clear["subject"], clear["body"], clear["variables"]
    return OutgoingMessage(
        message_id=message.pk,
        tenant_slug=message.tenant.slug,
        channel=message.channel,
        event=message.event,
        language=message.language,
        to=message.to,
        subject=subject,
        body=body,
        variables={key: str(value) for key, value in variables.items()},
    )


def _finish(message: Message, *, claimed_at: Any, **changes: Any) -> Message:
    """Move a claimed message to a final status, dropping the recipient and any secret."""
    changes.update(to="", secret_ref="", updated_at=timezone.now())
    if changes.get("error"):  # a provider's reply may quote the number
        changes["error"] = redact(changes["error"])
    # status=QUEUED: a delivery report that raced ahead of us keeps its later status.
    Message.objects.for_tenant(message.tenant_id).filter(
        pk=message.pk, status=Status.QUEUED, claimed_at=claimed_at
    ).update(**changes)
    if message.secret_ref:
        cache.delete(_cache_key(message.secret_ref))
    message.refresh_from_db()
    return message


def _claim(message: Message, now: datetime) -> tuple[bool, datetime | None]:
    """Claim a queued message for this worker at `now`. Returns (True, None) when it is
    already sent or delivered (nothing to do), (False, None) for a fresh claim, and
    (False, the old claim's time) when the claim of a worker that died was taken over.
    Raises MessageInFlight while another worker holds it, PermanentGatewayError when it
    failed (or has now used its attempts)."""
    mine = Message.objects.for_tenant(message.tenant_id).filter(pk=message.pk, status=Status.QUEUED)
    if mine.filter(claimed_at__isnull=True).update(
        claimed_at=now, attempts=F("attempts") + 1, updated_at=now
    ):
        return False, None
    message.refresh_from_db()
    if message.status in (Status.SENT, Status.DELIVERED):
        return True, None
    if message.status == Status.FAILED:
        raise PermanentGatewayError(message.error or "the message failed")
    held_since = message.claimed_at
    if held_since is None:  # released between our two reads: the next try claims it
        raise MessageInFlight("another worker just tried this message", claimed_at=now - CLAIM_BUSY)
    if held_since >= now - CLAIM_LEASE:
        raise MessageInFlight("another worker is sending this message", claimed_at=held_since)
    if message.attempts >= MAX_ATTEMPTS:
        error = f"gave up after {message.attempts} attempts: the worker stopped while calling the gateway"
        _finish(message, claimed_at=held_since, status=Status.FAILED, failed_at=now, error=error)
        raise PermanentGatewayError(error)
    # Its worker died mid-send: take the claim over (only one taker wins).
    if not mine.filter(claimed_at=held_since).update(
        claimed_at=now, attempts=F("attempts") + 1, updated_at=now
    ):
        raise MessageInFlight("another worker took this message over", claimed_at=now)
    logger.warning(
        "message %s: the worker that claimed it at %s stopped mid-send; sending it again",
        message.pk,
        held_since.isoformat(),
    )
    return False, held_since


def message_deliver(message_id: int, *, timeout: Timeout = HTTP_TIMEOUT) -> Message:
    """Claim and send through the tenant's gateway. No-op returning the message if already sent/delivered.
    On a transient gateway failure: records attempts/error, leaves it queued and raises TransientGatewayError.
    On a permanent failure: marks failed (blanks `to`), raises PermanentGatewayError; a message that
    already failed raises PermanentGatewayError again. While another worker is sending it: raises
    MessageInFlight (a TransientGatewayError; try again at its `retry_at`).

    A claim past CLAIM_LEASE (its worker died mid-send) is taken over: the message is sent
    again as the same message (the gateway's idempotency key, or a look-up of what the
    provider already took: `find_sent`), or failed once it has used MAX_ATTEMPTS.
    `timeout` bounds the gateway call (INLINE_TIMEOUT when a person waits on it)."""
    message = (
        Message.objects.unscoped(reason="a worker delivers a message by its id")
        .select_related("tenant")
        .get(pk=message_id)
    )
    if message.status in (Status.SENT, Status.DELIVERED):
        return message
    if message.status == Status.FAILED:
        raise PermanentGatewayError(message.error or "the message failed")

    now = timezone.now()
    done, lost_claim_at = _claim(message, now)
    if done:
        return message
    message.refresh_from_db()

    try:
        if not message.to:
            raise PermanentGatewayError("the recipient was erased before the message was sent")
        outgoing = _outgoing(message)
        config = selectors.gateway_config_get(tenant=message.tenant_id, channel=message.channel)
        gateway = gateway_for(
            config, status_callback=_status_callback_url(config.kind if config else ""), timeout=timeout
        )
        result = None
        if lost_claim_at is not None:
            result = _already_sent(gateway, outgoing, since=lost_claim_at)
        if result is None:
            result = gateway.send(outgoing)
    except TransientGatewayError as exc:
        Message.objects.for_tenant(message.tenant_id).filter(pk=message_id, claimed_at=now).update(
            claimed_at=None, error=redact(str(exc)), updated_at=timezone.now()
        )
        raise
    except PermanentGatewayError as exc:
        _finish(message, claimed_at=now, status=Status.FAILED, failed_at=timezone.now(), error=str(exc))
        raise
    except Exception as exc:
        # A bug, not the provider: the gateway may well have accepted the message,
        # so it is failed rather than retried.
        logger.exception("unexpected error sending message %s", message_id)
        error = f"unexpected error: {type(exc).__name__}"
        _finish(message, claimed_at=now, status=Status.FAILED, failed_at=timezone.now(), error=error)
        raise PermanentGatewayError(error) from exc
    return _finish(
        message,
        claimed_at=now,
        status=Status.SENT,
        sent_at=timezone.now(),
        gateway=gateway.kind,
        provider_message_id=result.provider_message_id[:100],
        error="",
    )


def _already_sent(gateway: Gateway, outgoing: OutgoingMessage, *, since: datetime) -> GatewayResult | None:
    """Before sending again after a lost claim: the provider's record of the first send,
    where the gateway can ask for it. A provider that refuses the question (no right to
    read its records) is answered by sending again: twice rather than never."""
    try:
        found = gateway.find_sent(outgoing, since=since)
    except PermanentGatewayError as exc:
        logger.warning("message %s: the provider cannot tell what it took (%s)", outgoing.message_id, exc)
        return None
    if found is not None:
        logger.info("message %s: the provider already has it; not sent again", outgoing.message_id)
    elif gateway.resend_guard == "none":
        logger.warning(
            "message %s: %s cannot tell a repeated send; the person may get it twice",
            outgoing.message_id,
            gateway.kind,
        )
    return found


def message_fail(*, message_id: int, error: str) -> bool:
    """Give up on a queued message nobody is sending; False if it was sent, failed or is in flight."""
    message = (
        Message.objects.unscoped(reason="a worker fails a message by its id").filter(pk=message_id).first()
    )
    if message is None:
        return False
    now = timezone.now()
    updated = (
        Message.objects.for_tenant(message.tenant_id)
        .filter(pk=message_id, status=Status.QUEUED, claimed_at__isnull=True)
        .update(
            status=Status.FAILED, failed_at=now, error=redact(error), to="", secret_ref="", updated_at=now
        )
    )
    if updated and message.secret_ref:
        cache.delete(_cache_key(message.secret_ref))
    return bool(updated)


def message_retry_or_fail(*, message_id: int, error: str, max_attempts: int = MAX_ATTEMPTS) -> float | None:
    """After a transient failure: seconds until the next try, or None when it was the last
    try (the message is then failed with the error)."""
    row = (
        Message.objects.unscoped(reason="a worker retries a message by its id")
        .filter(pk=message_id)
        .values_list("tenant_id", "attempts")
        .first()
    )
    if row is None:
        return None
    tenant_id, attempts = row
    if attempts >= max_attempts:
        message_fail(message_id=message_id, error=f"gave up after {attempts} attempts: {error}")
        return None
    delay = retry_delay(attempts)
    Message.objects.for_tenant(tenant_id).filter(pk=message_id, status=Status.QUEUED).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    return delay


# --- send (create + deliver in the background) ---------------------------------------


def message_dispatch(message_id: int, countdown: float = 0) -> bool:
    """Hand a message to a worker; True when the broker took it. Never raises: with the
    broker down the message stays due and messages_sweep() dispatches it later."""
    return dispatch_or_leave_for_sweep(
        tasks.deliver_message, message_id, what=f"message {message_id}", countdown=countdown
    )


def message_enqueue(*, message: Message) -> Message:
    """Make a queued message the send machinery's: due now (`next_attempt_at`), so that
    messages_sweep() sends it when nobody else does (a lost task, a worker that died)."""
    if message.status == Status.QUEUED and message.next_attempt_at is None:
        Message.objects.for_tenant(message.tenant_id).filter(
            pk=message.pk, status=Status.QUEUED, next_attempt_at__isnull=True
        ).update(next_attempt_at=timezone.now())
        message.refresh_from_db(fields=["next_attempt_at"])
    return message


def _dispatch_or_send_here(message_id: int, *, urgent: bool) -> None:
    """After commit: hand the message to a worker. When the broker cannot take it, a message
    that cannot wait for the sweep (a one-time code: valid for minutes, with its person
    waiting on the page) is sent here and now, with a short timeout; a gateway that fails
    leaves it to the sweep, as any other message waits for it."""
    if message_dispatch(message_id) or not urgent:
        return
    logger.warning("broker unavailable; message %s is sent in-process", message_id)
    try:
        message_deliver(message_id, timeout=INLINE_TIMEOUT)
    except GatewayError as exc:  # recorded on the row; the text may quote the provider
        logger.warning("message %s not sent in-process: %s", message_id, type(exc).__name__)


def notification_send(
    *,
    tenant: Tenant,
    event: str,
    to: str,
    channel: str = "sms",
    language: str | None = None,
    context: dict[str, object],
    dedupe_key: str | None = None,
) -> Message:
    """message_create + enqueue the send task with transaction.on_commit (fire and forget, the task retries:
    max 5 attempts, exponential backoff with jitter; after the last attempt the message is marked failed
    with the error). A repeated call with the same dedupe_key sends nothing new. A message with a
    one-time code does not depend on the broker: when the broker cannot take it, it is sent in-process."""
    message = message_create(
        tenant=tenant,
        event=event,
        to=to,
        channel=channel,
        language=language,
        context=context,
        dedupe_key=dedupe_key,
    )
    if message.status == Status.QUEUED and message.next_attempt_at is None:
        # next_attempt_at marks the message as the task's to send (and the sweep's
        # to re-dispatch); messages created alone are their caller's to deliver.
        message = message_enqueue(message=message)
        message_id, urgent = message.pk, bool(message.secret_ref)
        transaction.on_commit(lambda: _dispatch_or_send_here(message_id, urgent=urgent))
    return message


def messages_sweep(*, stale_after: timedelta = timedelta(minutes=2)) -> dict[str, int]:
    """Run by beat: dispatch queued messages whose try is overdue (broker down, a lost
    task) and those whose claim outlived CLAIM_LEASE (the worker died mid-send):
    message_deliver() takes such a claim over and sends the message again, once in
    effect, or fails it after MAX_ATTEMPTS."""
    now = timezone.now()
    due = list(
        Message.objects.unscoped(reason="the sweep re-dispatches every tenant's overdue messages")
        .filter(status=Status.QUEUED, next_attempt_at__lte=now - stale_after)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE))
        .values_list("pk", flat=True)[:1000]
    )
    for message_id in due:
        message_dispatch(message_id)
    return {"dispatched": len(due)}


# --- staff: send a failed message again -------------------------------------------------


class MessageNotRetryable(Exception):
    """This message cannot be sent again; str(exc) says why, fit to show staff."""


# A failed message has dropped its recipient. The layer above that still holds the number
# for a while (an open request, for its confirmation) says what it is: a lookup returns the
# recipient of a message, or "" when it has none any more. Registered in AppConfig.ready().
RecipientLookup = Callable[[Message], str]
_recipient_lookups: list[RecipientLookup] = []


def message_recipient_register(lookup: RecipientLookup) -> None:
    """Add a way to find a failed message's recipient again (see message_retry)."""
    if lookup not in _recipient_lookups:
        _recipient_lookups.append(lookup)


def _recipient_again(message: Message) -> str:
    if message.to:
        return message.to
    for lookup in _recipient_lookups:
        found = lookup(message)
        if found and _recipient(found, message.channel, message.tenant_id)[1] == message.to_hash:
            return found
    return ""


def message_retry(*, message: Message, to: str = "", dispatch: bool = True) -> Message:
    """Staff (the admin's "Send again", a request's retry): put a failed message back in
    the queue with a fresh set of attempts, and hand it to a worker after commit. The row
    stays the same, so the provider sees the same message again (its idempotency key).
    `to` is the recipient when the caller knows it; else the message's own, else a
    registered lookup's. Raises MessageNotRetryable (not failed, a one-time code whose
    text is gone, or a recipient erased since)."""
    if message.status != Status.FAILED:
        raise MessageNotRetryable(_("Only a failed message can be sent again."))
    if message.event == "otp" or SECRET_VARIABLES & set(message.context):
        raise MessageNotRetryable(
            _("A one-time code is not sent again: the person asks for a new one on the page.")
        )
    recipient = to or _recipient_again(message)
    if not recipient:
        raise MessageNotRetryable(
            _("The recipient's number or address was erased: this message can no longer be sent.")
        )
    now = timezone.now()
    with transaction.atomic():
        updated = (
            Message.objects.for_tenant(message.tenant_id)
            .filter(pk=message.pk, status=Status.FAILED)
            .update(
                status=Status.QUEUED,
                to=recipient,
                attempts=0,
                claimed_at=None,
                failed_at=None,
                next_attempt_at=now,
                updated_at=now,
            )
        )
        if not updated:
            raise MessageNotRetryable(_("Only a failed message can be sent again."))
        if dispatch:
            message_id = message.pk
            transaction.on_commit(lambda: message_dispatch(message_id))
    logger.info("message %s put back in the queue by staff", message.pk)
    message.refresh_from_db()
    return message


# --- delivery reports -------------------------------------------------------------------

# Twilio's MessageStatus values → ours. Others (queued, sending, accepted, …) change nothing.
TWILIO_STATUSES = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.FAILED,
    "failed": Status.FAILED,
}
_RANK = {Status.QUEUED: 0, Status.SENT: 1, Status.DELIVERED: 2, Status.FAILED: 2}


def message_status_report(*, message: Message, provider_status: str, error_code: str = "") -> Message:
    """Apply a provider's delivery report. Statuses only move forward (a late 'sent'
    after 'delivered' changes nothing); a final status drops the recipient."""
    new_status = TWILIO_STATUSES.get(provider_status)
    now = timezone.now()
    changes: dict[str, Any] = {"provider_status": provider_status[:32], "updated_at": now}
    if new_status is not None and _RANK[new_status] > _RANK[Status(message.status)]:
        changes.update(status=new_status, to="", secret_ref="")
        if new_status == Status.SENT:
            changes["sent_at"] = message.sent_at or now
        elif new_status == Status.DELIVERED:
            changes["delivered_at"] = now
        else:
            changes["failed_at"] = now
            changes["error"] = f"provider reported {provider_status}" + (
                f" (error {error_code})" if error_code else ""
            )
    Message.objects.for_tenant(message.tenant_id).filter(pk=message.pk, status=message.status).update(
        **changes
    )
    message.refresh_from_db()
    return message


# --- erasure ------------------------------------------------------------------------------


def messages_erase_recipient(*, tenant_id: int, to_hash: str) -> int:
    """The "notifications.messages" data source (registered by the core, an erase step): drop the raw
    number from every message of the tenant sent to it (masked form and hash stay)."""
    rows = Message.objects.for_tenant(tenant_id).filter(to_hash=to_hash)
    for secret_ref in rows.exclude(secret_ref="").values_list("secret_ref", flat=True):
        cache.delete(_cache_key(secret_ref))
    count = rows.exclude(to="", secret_ref="").update(to="", secret_ref="", updated_at=timezone.now())
    return count


# --- readiness ------------------------------------------------------------------------


def tenants_without_sms_gateway(tenant_ids: list[int]) -> set[int]:
    """The tenants among these whose SMS (confirmations, one-time codes) cannot be sent:
    no active SMS gateway, and the file gateway is not allowed here. Empty in development."""
    if file_gateway_allowed():
        return set()
    ready = set(
        GatewayConfig.objects.for_tenants(tenant_ids)
        .filter(channel=MessageChannel.SMS, is_active=True)
        .exclude(kind=GatewayConfig.Kind.FILE)
        .values_list("tenant_id", flat=True)
    )
    return set(tenant_ids) - ready


def sms_gateway_warning(tenant: Tenant) -> str | None:
    """The tenant's admin page warns while its SMS cannot be sent (tenants.readiness)."""
    if not tenants_without_sms_gateway([tenant.pk]):
        return None
    return _(
        "Not ready: no SMS gateway configured. Confirmations and one-time codes for this"
        " tenant fail until one is set up (Gateways)."
    )
