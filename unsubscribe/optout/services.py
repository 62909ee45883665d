"""State changes for one-time codes: send, check, use, expire, erase.

Rules kept here, in one place:
- The code is never stored or logged: a keyed hash (HMAC-SHA256 with SECRET_KEY)
  is kept, the clear code goes only to notifications.notification_send (which keeps
  it out of the database too).
- The raw number stays on the row only while it is needed to file the request.
- Every send passes limits.send_allowed() first; a refused send creates nothing.
- Sending a code answers the same for every valid number: nothing here looks at
  whether the number is subscribed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lanzuan import phones
from notifications import services as notification_services  # by module: tests replace its functions
from tenants.models import Tenant
from unsubscribe import domain_events
from unsubscribe.donotmarket.services import platform_do_not_market_lift, platform_do_not_market_set
from unsubscribe.errors import StepWaiting, UnsubscribeError
from unsubscribe.models import (
    SCOPE_ALL,
    PlatformDoNotMarket,
    RequestChannel,
    UnsubscribeRequest,
    VerificationMethod,
)
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.suppressions.services import suppressions_add

from . import limits, platform
from .models import Alternative, Choice, ChoiceDay, MarketingPreference, PhoneVerification

logger = logging.getLogger(__name__)

CODE_DIGITS = 6


class CodeError(Exception):
    """The code was not accepted; `reason` is "wrong", "expired", "attempts" or "used"."""

    def __init__(self, reason: str, attempts_left: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts_left = attempts_left


def code_hash(*, phone_hash: str, code: str) -> str:
    message = f"lanzuan.optout.otp:{phone_hash}:{code}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


@dataclass(frozen=True)
class CodeSent:
    verification: PhoneVerification | None  # None: refused, or a hub number no provider knows
    refusal: limits.Refusal | None


def verification_start(
    *,
    tenant: Tenant | None,
    e164: str,
    ip: str,
    language: str,
    purpose: str = PhoneVerification.Purpose.WEB,
    replaces: PhoneVerification | None = None,
) -> CodeSent:
    """Send a new one-time code to `e164`: through `tenant`'s SMS gateway, signed by the
    tenant, on its page; through the platform's sender, signed by the platform, on the hub
    (there `tenant` only owns the row, so that its erasure clears it).

    With tenant None (a hub number no provider markets to) the limits are applied
    and nothing is sent, so the answer looks the same as for any other number.
    `replaces` is the person's earlier code: it stops working once a new one is sent.
    """
    digest = phones.platform_phone_hash(e164)  # the limits count across the whole platform
    if purpose == PhoneVerification.Purpose.HUB and not _hub_can_send():
        # The same answer whether or not a provider knows the number.
        return CodeSent(None, limits.Refusal("unavailable", 0))
    scope = _scope(purpose=purpose, tenant_id=tenant.pk if tenant else None)
    refusal = limits.send_allowed(scope=scope, phone_hash=digest, e164=e164, ip=ip)
    if refusal is not None:
        logger.info("one-time code to %s refused: %s", phones.mask(e164), refusal.reason)
        return CodeSent(None, refusal)
    if replaces is not None:
        verification_retire(replaces)
    if tenant is None:
        return CodeSent(None, None)
    code = new_code()
    if purpose == PhoneVerification.Purpose.HUB:
        return _hub_create_and_send(tenant=tenant, e164=e164, code=code, language=language)
    try:
        verification = _create_and_send(
            tenant=tenant, purpose=purpose, e164=e164, code=code, language=language
        )
    except ValueError:
        # The tenant's OTP template or gateway setup is broken: the person is told to
        # use another way; the provider sees the error in the logs (no number, no code).
        logger.exception("one-time code for tenant %s could not be created", tenant.slug)
        return CodeSent(None, limits.Refusal("unavailable", 0))
    logger.info("one-time code %s sent to %s", verification.pk, verification.phone_masked)
    return CodeSent(verification, None)


def _verification_create(
    *, tenant: Tenant, purpose: str, e164: str, code: str, language: str
) -> PhoneVerification:
    digest = phones.tenant_phone_hash(tenant.pk, e164)
    now = timezone.now()
    return PhoneVerification.objects.create(
        tenant=tenant,
        purpose=purpose,
        phone=e164,
        phone_hash=digest,
        phone_masked=phones.mask(e164),
        code_hash=code_hash(phone_hash=digest, code=code),
        language=language,
        created_at=now,
        expires_at=now + timedelta(seconds=limits.limit("LANZUAN_OTP_TTL_SECONDS")),
    )


def _hub_can_send() -> bool:
    try:
        platform.platform_gateway()
    except platform.PlatformSenderMissing:
        logger.error("the hub cannot send codes: no platform SMS sender is configured")
        return False
    return True


def _hub_create_and_send(*, tenant: Tenant, e164: str, code: str, language: str) -> CodeSent:
    verification = _verification_create(
        tenant=tenant, purpose=PhoneVerification.Purpose.HUB, e164=e164, code=code, language=language
    )
    try:
        platform.platform_code_queue(
            verification_id=verification.pk,
            e164=e164,
            code=code,
            language=language,
            ttl=limits.limit("LANZUAN_OTP_TTL_SECONDS"),
        )
    except platform.PlatformSenderMissing:
        verification_retire(verification)
        return CodeSent(None, limits.Refusal("unavailable", 0))
    logger.info("hub code %s queued for %s", verification.pk, verification.phone_masked)
    return CodeSent(verification, None)


def _create_and_send(
    *, tenant: Tenant, purpose: str, e164: str, code: str, language: str
) -> PhoneVerification:
    with transaction.atomic():
        verification = _verification_create(
            tenant=tenant, purpose=purpose, e164=e164, code=code, language=language
        )
        notification_services.notification_send(
            tenant=tenant,
            event="otp",
            to=e164,
            channel="sms",
            language=language,
            context={"code": code},
            dedupe_key=f"otp:{verification.pk}",
        )
    return verification


def _scope(*, purpose: str, tenant_id: int | None) -> str:
    return "hub" if purpose == PhoneVerification.Purpose.HUB else f"t{tenant_id or 0}"


def verification_check(*, verification: PhoneVerification, code: str, ip: str) -> PhoneVerification:
    """Accept or refuse a code. Each try counts, right or wrong; after the last
    allowed try the code is dead even if the next guess would be right."""
    now = timezone.now()
    max_attempts = limits.limit("LANZUAN_OTP_MAX_ATTEMPTS")
    if verification.used_at is not None:
        raise CodeError("used")
    if verification.verified_at is not None and verification.phone:
        return verification
    if verification.expires_at <= now or not verification.phone:
        raise CodeError("expired")
    counted = (
        PhoneVerification.objects.for_tenant(verification.tenant_id)
        .filter(pk=verification.pk, attempts__lt=max_attempts, verified_at=None)
        .update(attempts=F("attempts") + 1)
    )
    verification.refresh_from_db()
    if not counted:
        if verification.verified_at is not None:
            return verification
        raise CodeError("attempts")
    expected = verification.code_hash
    given = code_hash(phone_hash=verification.phone_hash, code=(code or "").strip())
    if not hmac.compare_digest(expected, given):
        left = max_attempts - verification.attempts
        raise CodeError("wrong" if left > 0 else "attempts", attempts_left=left)
    mine = PhoneVerification.objects.for_tenant(verification.tenant_id)
    if mine.filter(pk=verification.pk, verified_at=None).update(verified_at=now):
        scope = _scope(purpose=verification.purpose, tenant_id=verification.tenant_id)
        limits.send_verified(scope=scope, e164=verification.phone, ip=ip)
    verification.refresh_from_db()
    return verification


def verification_pending_for(verification: PhoneVerification, e164: str) -> bool:
    """An unverified, unexpired code for this very number."""
    return (
        verification.verified_at is None
        and verification.used_at is None
        and bool(verification.phone)
        and verification.expires_at > timezone.now()
        and verification.attempts < limits.limit("LANZUAN_OTP_MAX_ATTEMPTS")
        and verification.phone_hash == phones.tenant_phone_hash(verification.tenant_id, e164)
    )


def verification_usable(verification: PhoneVerification) -> bool:
    """Verified, not used, still holding the number, and not stale."""
    if verification.verified_at is None or verification.used_at is not None or not verification.phone:
        return False
    ttl = timedelta(seconds=limits.limit("LANZUAN_OTP_VERIFIED_TTL_SECONDS"))
    return verification.verified_at + ttl > timezone.now()


def verification_use(verification: PhoneVerification) -> None:
    """The request is filed: the row keeps its evidence (times, hash) but not the number."""
    PhoneVerification.objects.for_tenant(verification.tenant_id).filter(pk=verification.pk).update(
        used_at=timezone.now(), phone=""
    )
    verification.refresh_from_db()


def verification_retire(verification: PhoneVerification) -> None:
    """A newer code replaced this one: it can no longer be used."""
    PhoneVerification.objects.for_tenant(verification.tenant_id).filter(
        pk=verification.pk, used_at=None
    ).update(phone="", expires_at=timezone.now())


def evidence(verification: PhoneVerification) -> dict[str, object]:
    """What the request records about the verification: no number, no code."""
    verified_at = verification.verified_at
    return {"otp_id": verification.pk, "verified_at": verified_at.isoformat() if verified_at else None}


def verifications_sweep() -> dict[str, int]:
    """Blank the number of every code that expired unverified, or was verified but
    not used in time (the person left). Run by beat; safe to run any time."""
    now = timezone.now()
    verified_ttl = timedelta(seconds=limits.limit("LANZUAN_OTP_VERIFIED_TTL_SECONDS"))
    stale = (
        PhoneVerification.objects.unscoped(reason="the sweep blanks every tenant's stale numbers")
        .exclude(phone="")
        .filter(Q(verified_at=None, expires_at__lte=now) | Q(verified_at__lte=now - verified_ttl))
    )
    return {"blanked": stale.update(phone="")}


def verifications_erase_number(request: UnsubscribeRequest) -> int:
    """Registered as the "optout.verifications" data source (an erase step): blank the
    number of the tenant's verifications for the request's number.

    A code the person is using right now (verified, not used, not stale: they stop one
    service after another from the hub or the page) keeps the number until they are done:
    the step waits until the code is stale, when the sweep has blanked it anyway."""
    ttl = timedelta(seconds=limits.limit("LANZUAN_OTP_VERIFIED_TTL_SECONDS"))
    in_use = (
        PhoneVerification.objects.for_tenant(request.tenant_id)
        .filter(phone_hash=request.phone_hash, used_at=None, verified_at__gt=timezone.now() - ttl)
        .exclude(phone="")
        .order_by("-verified_at")
        .values_list("verified_at", flat=True)
        .first()
    )
    if in_use is not None:
        raise StepWaiting("a one-time code of the number is in use on a page", until=in_use + ttl)
    count = (
        PhoneVerification.objects.for_tenant(request.tenant_id)
        .filter(phone_hash=request.phone_hash)
        .exclude(phone="")
        .update(phone="")
    )
    return count


# --- filing the request -----------------------------------------------------------------


class VerificationLapsed(UnsubscribeError):
    """The verified number was blanked (the code lapsed, or the data was erased)
    between the code check and the submit: the person starts again."""

    code = "verification_lapsed"


def _require_number(verification: PhoneVerification) -> None:
    if not verification.phone:
        raise VerificationLapsed(_("Your verification has expired. Please start again."))


def web_request_file(
    *, tenant: Tenant, verification: PhoneVerification, services: list[str] | None, language: str
) -> UnsubscribeRequest:
    """File the verified person's opt-out on the tenant's page, then retire the code.

    The idempotency key makes a double submit return the same request. Raises the
    core's UnsubscribeError subclasses (ChannelDisabled, UnknownServices) with
    messages fit to show.
    """
    _require_number(verification)
    # One transaction: the pipeline (dispatched after commit) finds the code used, not in use.
    with transaction.atomic():
        filed = unsubscribe_request_create(
            tenant=tenant,
            phone=verification.phone,
            channel=RequestChannel.WEB,
            verification_method=VerificationMethod.OTP,
            verification_evidence=evidence(verification),
            services=services or None,
            language=language,
            idempotency_key=f"web-otp-{verification.pk}",
            filed_by="the person, on the opt-out page",
        )
        verification_use(verification)
    choice_count(tenant=tenant, choice=Choice.STOP)
    return filed.request


@dataclass(frozen=True)
class HubOutcome:
    requests: list[UnsubscribeRequest]
    refused: list[tuple[Tenant, str]]  # providers that did not take the request, and why


def hub_requests_file(
    *, verification: PhoneVerification, tenants: list[Tenant], language: str, retire: bool = True
) -> HubOutcome:
    """One request per chosen provider, all marketing, through the core service
    (channel "hub", verified by the one-time code). A provider that refuses (hub
    switched off) does not stop the others. `retire` False (one provider stopped with one
    tap) keeps the code usable, so the person can go on from the hub."""
    _require_number(verification)
    filed: list[UnsubscribeRequest] = []
    refused: list[tuple[Tenant, str]] = []
    # One transaction: the pipelines (dispatched after commit) find the code used, not in use.
    with transaction.atomic():
        for tenant in tenants:
            try:
                result = unsubscribe_request_create(
                    tenant=tenant,
                    phone=verification.phone,
                    channel=RequestChannel.HUB,
                    verification_method=VerificationMethod.OTP,
                    verification_evidence=evidence(verification),
                    services=None,
                    language=language,
                    idempotency_key=f"hub-otp-{verification.pk}-{tenant.pk}",
                    filed_by="the person, on the one-stop hub",
                )
            except UnsubscribeError as exc:
                refused.append((tenant, exc.message))
                continue
            filed.append(result.request)
            choice_count(tenant=tenant, choice=Choice.STOP)
        if retire:
            verification_use(verification)
    return HubOutcome(filed, refused)


def hub_phantom_resend(*, phone_hash: str, head: str, ip: str) -> limits.Refusal | None:
    """A "new code" for a hub number no provider knows: the same limits, nothing sent.
    `head` is the start of the number (enough for the prefix cap), never the whole number."""
    if not _hub_can_send():
        return limits.Refusal("unavailable", 0)
    return limits.send_allowed(scope="hub", phone_hash=phone_hash, e164=head, ip=ip)


# --- the hub's phantom flow --------------------------------------------------------------------------
# A hub number no provider knows gets no code and no row, only this state in the person's session
# (the number's hash, its head and its masked form, never the number itself). Each step answers
# exactly as it would for a real code, so the hub never tells who markets to a number.


def hub_phantom_state(e164: str) -> dict[str, Any]:
    return {
        "v": None,
        "hash": phones.platform_phone_hash(e164),  # for the platform-wide limits only
        "head": e164[: 1 + limits.limit("LANZUAN_OTP_PREFIX_DIGITS")],
        "masked": phones.mask(e164),
        "attempts": 0,
        "expires": _phantom_expiry(),
    }


def hub_phantom_renewed(state: dict[str, Any]) -> dict[str, Any]:
    """The state after a "new code" (see hub_phantom_resend): fresh tries, a fresh expiry."""
    return {**state, "attempts": 0, "expires": _phantom_expiry()}


def hub_phantom_check(state: dict[str, Any]) -> tuple[dict[str, Any] | None, CodeError]:
    """A try at a code that was never sent: it fails exactly as a wrong one would.

    Returns the state to store (this try counted; None when nothing changed) and the error
    to answer with.
    """
    max_attempts = limits.limit("LANZUAN_OTP_MAX_ATTEMPTS")
    if float(state.get("expires", 0)) <= time.time():
        return None, CodeError("expired")
    attempts = int(state.get("attempts", 0))
    if attempts >= max_attempts:
        return None, CodeError("attempts")
    attempts += 1
    left = max_attempts - attempts
    return {**state, "attempts": attempts}, CodeError("wrong" if left > 0 else "attempts", attempts_left=left)


def _phantom_expiry() -> float:
    return time.time() + limits.limit("LANZUAN_OTP_TTL_SECONDS")


# --- one tap from the hub and the tenant's page: a service, a provider, an alternative (issue 17) ----


def choice_count(*, tenant: Tenant, choice: str) -> None:
    """One more person made `choice` today (the tenant's day): a count, nothing else."""
    day = timezone.localtime(timezone.now(), tenant.zoneinfo).date()
    rows = ChoiceDay.objects.for_tenant(tenant)
    # Concurrency-safe: the unique (tenant, day, choice) decides who creates the row.
    ChoiceDay.objects.bulk_create(
        [ChoiceDay(tenant=tenant, day=day, choice=choice, count=0)], ignore_conflicts=True
    )
    rows.filter(day=day, choice=choice).update(count=F("count") + 1)


def _channel(purpose: str) -> str:
    return RequestChannel.HUB if purpose == PhoneVerification.Purpose.HUB else RequestChannel.WEB


def service_stop(
    *, tenant: Tenant, verification: PhoneVerification, service_code: str, language: str
) -> UnsubscribeRequest:
    """The one-tap stop of one service (a suggestion's button): a request for that service,
    filed like any other. The code stays usable for the person's next choice on the page.
    Raises the core's UnsubscribeError subclasses (ChannelDisabled, UnknownServices)."""
    _require_number(verification)
    channel = _channel(verification.purpose)
    filed = unsubscribe_request_create(
        tenant=tenant,
        phone=verification.phone,
        channel=channel,
        verification_method=VerificationMethod.OTP,
        verification_evidence=evidence(verification),
        services=[service_code],
        language=language,
        idempotency_key=f"{channel}-otp-{verification.pk}-{tenant.pk}-{service_code}",
        filed_by="the person, one tap on a suggestion",
    )
    choice_count(tenant=tenant, choice=Choice.STOP)
    return filed.request


PAUSE_DAYS: dict[str, int] = {Alternative.Kind.PAUSE30: 30, Alternative.Kind.PAUSE90: 90}


class AlternativeNotOffered(UnsubscribeError):
    code = "alternative_not_offered"


def alternative_choose(
    *, tenant: Tenant, verification: PhoneVerification, kind: str, scope: str = SCOPE_ALL
) -> datetime | None:
    """The person took an alternative the tenant offers instead of opting out of `scope`
    ("*" or a service code). A pause is a suppression with an end (the sweep lifts it,
    recorded as such); "fewer" and "another channel" are preferences recorded for the
    tenant and sent to its webhooks (`preference.recorded`). Returns a pause's end."""
    _require_number(verification)
    offered = (
        Alternative.objects.for_tenant(tenant).filter(kind=kind, is_active=True).first()
        if kind in Alternative.Kind.values
        else None
    )
    if offered is None:
        raise AlternativeNotOffered(_("%(tenant)s does not offer this.") % {"tenant": tenant.name})
    digest = phones.tenant_phone_hash(tenant.pk, verification.phone)
    masked = phones.mask(verification.phone)
    channel = _channel(verification.purpose)
    with transaction.atomic():
        if kind in PAUSE_DAYS:
            until: datetime = timezone.now() + timedelta(days=PAUSE_DAYS[kind])
            suppressions_add(
                tenant=tenant,
                phone_hash=digest,
                phone_masked=masked,
                scopes=[scope],
                channel=channel,
                ends_at=until,
                e164=verification.phone,
                evidence={**evidence(verification), "verification_method": VerificationMethod.OTP},
            )
            choice_count(tenant=tenant, choice=kind)
            return until
        MarketingPreference.objects.create(
            tenant=tenant,
            phone_hash=digest,
            phone_masked=masked,
            kind=kind,
            scope=scope,
            channel=offered.channel if kind == Alternative.Kind.CHANNEL else "",
        )
        domain_events.emit(
            tenant.pk,
            "preference.recorded",
            {
                "phone_hash": digest,
                "phone_masked": masked,
                "kind": kind,
                "scope": scope,
                "channel": offered.channel if kind == Alternative.Kind.CHANNEL else None,
                "recorded_at": timezone.now().isoformat(),
            },
        )
        choice_count(tenant=tenant, choice=kind)
    return None


class FreshCodeNeeded(UnsubscribeError):
    code = "fresh_code_needed"


def hub_do_not_market_set(*, verification: PhoneVerification, tenants: list[Tenant]) -> bool:
    """The person blocks marketing from every provider, present and future. `tenants`
    (the providers that market to the number now) each count the choice."""
    _require_number(verification)
    created = platform_do_not_market_set(
        e164=verification.phone, evidence={**evidence(verification), "verification_method": "otp"}
    )
    if created:
        for tenant in tenants:
            choice_count(tenant=tenant, choice=Choice.DO_NOT_MARKET)
    return created


def do_not_market_liftable(verification: PhoneVerification, entry: PlatformDoNotMarket) -> bool:
    """Only with a code verified after the entry was set: never the one that set it."""
    return verification.verified_at is not None and verification.verified_at > entry.created_at


def hub_do_not_market_lift(*, verification: PhoneVerification, entry: PlatformDoNotMarket) -> bool:
    """Lift the person's entry; raises FreshCodeNeeded unless the code is newer than it.
    The code is used up: lifting is the end of the visit."""
    _require_number(verification)
    if not do_not_market_liftable(verification, entry):
        raise FreshCodeNeeded(_("To lift the block, verify your number again with a new code."))
    lifted = platform_do_not_market_lift(
        e164=verification.phone, evidence={**evidence(verification), "verification_method": "otp"}
    )
    verification_use(verification)
    return lifted
