"""The platform's own SMS sender, for the one-stop hub's one-time codes.

The hub is the platform's page, not a provider's: its code SMS is signed with the
platform's name (settings.LANZUAN_PLATFORM_NAME / _EN) and goes out through the
platform's sender (settings.LANZUAN_PLATFORM_SMS_URL, an HTTP gateway signed like
lanzuan.signing; the file gateway in development), never through the gateway and
sign of whichever provider happens to hold the number.

The code never reaches the database or the broker: the text waits in the cache under
a random reference for as long as the code is valid, and the task carries only the
reference. Sending is queued so that the hub answers as fast for a number some
provider knows (a code is sent) as for one nobody knows (nothing is sent).
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.core.cache import cache

from lanzuan import phones
from notifications.gateways import (
    HTTP_TIMEOUT,
    INLINE_TIMEOUT,
    FileGateway,
    Gateway,
    GatewayError,
    HttpGateway,
    OutgoingMessage,
    Timeout,
    TransientGatewayError,
)

from . import tasks  # by module: tasks imports this one

logger = logging.getLogger(__name__)

PLATFORM_SLUG = "platform"
# Texts of the SMS, per language (like notifications.defaults: message texts are data,
# short on purpose: a Chinese SMS holds 70 characters).
CODE_TEXTS = {
    "zh-hans": "【{name}】一站式退订验证码 {code}，{minutes}分钟内有效。如非本人操作请忽略。",
    "en": "[{name}] Your one-stop unsubscribe code is {code}, valid for {minutes} minutes.",
}


class PlatformSenderMissing(Exception):
    """No platform sender is configured (and the file gateway is for development only)."""


def platform_name(language: str) -> str:
    return settings.LANZUAN_PLATFORM_NAME_EN if language == "en" else settings.LANZUAN_PLATFORM_NAME


def code_text(*, code: str, language: str, minutes: int) -> str:
    language = "en" if language == "en" else "zh-hans"
    return CODE_TEXTS[language].format(name=platform_name(language), code=code, minutes=minutes)


def platform_gateway(timeout: Timeout = HTTP_TIMEOUT) -> Gateway:
    """The platform's SMS sender. Raises PlatformSenderMissing when there is none."""
    if settings.LANZUAN_PLATFORM_SMS_URL:
        return HttpGateway(
            url=settings.LANZUAN_PLATFORM_SMS_URL,
            secret=settings.LANZUAN_PLATFORM_SMS_SECRET,
            key_id=settings.LANZUAN_PLATFORM_SMS_KEY_ID,
            timeout=timeout,
        )
    if settings.LANZUAN_FILE_GATEWAY:
        return FileGateway()
    raise PlatformSenderMissing("set LANZUAN_PLATFORM_SMS_URL (or LANZUAN_FILE_GATEWAY=1 in development)")


def _cache_key(ref: str) -> str:
    return f"optout:platform-sms:{ref}"


def platform_code_queue(*, verification_id: int, e164: str, code: str, language: str, ttl: int) -> None:
    """Queue the hub's code SMS. Raises PlatformSenderMissing before anything is queued."""
    platform_gateway()  # fail now, while the person can still be told to use another way
    ref = secrets.token_urlsafe(16)
    minutes = max(ttl // 60, 1)
    cache.set(
        _cache_key(ref),
        {
            "id": verification_id,
            "to": e164,
            "language": language,
            "body": code_text(code=code, language=language, minutes=minutes),
        },
        timeout=ttl,
    )
    try:
        tasks.platform_sms_deliver.apply_async(args=(ref,), retry=True, retry_policy={"max_retries": 2})
    except Exception:  # the broker is down: send it now rather than not at all
        logger.warning("broker unavailable; the hub code %s is sent inline", verification_id, exc_info=True)
        try:
            platform_sms_send(ref, timeout=INLINE_TIMEOUT)
        except TransientGatewayError as exc:  # no worker to retry it: the person asks for a new code
            cache.delete(_cache_key(ref))
            logger.error("hub code %s not sent: %s", verification_id, type(exc).__name__)


def platform_sms_send(ref: str, *, timeout: Timeout = HTTP_TIMEOUT) -> bool:
    """Send a queued hub code. False when there is nothing to send (already sent, or the
    code expired). Raises TransientGatewayError to be retried; a permanent failure is
    logged and dropped (the person asks for a new code). `timeout` bounds the gateway
    call (INLINE_TIMEOUT when the person waits on the page)."""
    queued = cache.get(_cache_key(ref))
    if not isinstance(queued, dict):
        return False
    message = OutgoingMessage(
        # Negative: the idempotency key never equals that of a provider's message row.
        message_id=-int(queued["id"]),
        tenant_slug=PLATFORM_SLUG,
        channel="sms",
        event="otp",
        language=str(queued["language"]),
        to=str(queued["to"]),
        body=str(queued["body"]),
    )
    try:
        platform_gateway(timeout).send(message)
    except TransientGatewayError:
        raise
    except (GatewayError, PlatformSenderMissing) as exc:
        cache.delete(_cache_key(ref))
        logger.error("hub code to %s not sent: %s", phones.mask(message.to), exc)
        return False
    cache.delete(_cache_key(ref))
    logger.info("hub code %s sent to %s", queued["id"], phones.mask(message.to))
    return True
