"""The voice menu: one function handles every step of every call, whatever the platform.

Rules kept here, in one place:
- The caller ID is the verified number. A call without a usable one (withheld,
  "anonymous", not a phone number) is told how to use the page or SMS instead and
  files nothing.
- A step is handled under a lock on the call row, and every prompt carries the turn it
  answers: a platform's retry of a step already handled gets the same prompt back and
  changes nothing (no second key press, no second request).
- Wrong keys and silence repeat the prompt twice, then the call ends politely with
  nothing filed.
- The confirming key press files through the core in the same transaction that records
  it, so the request exists, and the number is suppressed, before the prompt that reads
  out its reference is returned. A call that drops after that key press has filed.
- The raw caller number is kept only while the call runs; the request holds it from
  then on, and the core's erasure clears anything left (`voice_calls_erase_number`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from lanzuan import phones
from tenants.models import Tenant
from unsubscribe.errors import UnsubscribeError
from unsubscribe.models import RequestChannel, Service, UnsubscribeRequest, VerificationMethod
from unsubscribe.requests.services import unsubscribe_request_create
from unsubscribe.selectors import channel_setting

from . import selectors
from .models import CallStep, Outcome, PromptKey, VoiceCall, VoiceCredential, VoiceProvider
from .prompts import (
    CONFIRMATION_NONE,
    CONFIRMATION_SMS,
    EN,
    SPEECH_LANGUAGE,
    ZH,
    PromptBook,
    says_final,
    spell_reference,
    split_say,
)

logger = logging.getLogger(__name__)

K = PromptKey
MAX_REPEATS = 2  # a wrong key or silence repeats the prompt this often, then the call ends
PAGE_SIZE = 7  # services per menu page: keys 1–7, 8 for more, * the previous page, 9 again, 0 back
GATHER_TIMEOUT_SECONDS = 6
# A call whose platform stopped calling us back this long ago has ended without us
# (settings.VOICE_CALL_STALE_AFTER overrides it).
STALE_AFTER = timedelta(hours=1)
# Twilio's CallStatus values for a call that is over.
ENDED_STATUSES = frozenset({"completed", "no-answer", "failed", "busy", "canceled"})

# Withheld caller IDs as carriers and platforms report them: words, or the words spelled
# on a keypad (Twilio's ANONYMOUS +266696687, RESTRICTED +7378742833, UNKNOWN +8656696,
# BLOCKED +2562533, UNAVAILABLE +86282452253 — the last one parses as a Chengdu landline).
WITHHELD = frozenset(
    {
        "anonymous",
        "restricted",
        "unknown",
        "blocked",
        "private",
        "unavailable",
        "withheld",
        "+266696687",
        "+7378742833",
        "+8656696",
        "+2562533",
        "+86282452253",
    }
)


@dataclass(frozen=True)
class Say:
    text: str
    language: str  # BCP-47, as <Say language=…> takes it: zh-CN, en-US


@dataclass(frozen=True)
class Prompt:
    """What to say next and which keys are expected; no keys means the call ends."""

    says: tuple[Say, ...]
    turn: int
    outcome: str
    digits: tuple[str, ...] = ()
    reference: str = ""
    timeout_seconds: int = GATHER_TIMEOUT_SECONDS
    max_digits: int = 1

    @property
    def hangup(self) -> bool:
        return not self.digits

    def as_dict(self) -> dict[str, Any]:
        return {
            "says": [{"text": s.text, "language": s.language} for s in self.says],
            "turn": self.turn,
            "outcome": self.outcome,
            "digits": list(self.digits),
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        return cls(
            says=tuple(Say(s["text"], s["language"]) for s in data.get("says", [])),
            turn=int(data.get("turn", 0)),
            outcome=str(data.get("outcome", Outcome.IN_PROGRESS)),
            digits=tuple(data.get("digits", [])),
            reference=str(data.get("reference", "")),
        )


def caller_e164(raw: str) -> str | None:
    """The caller's number in E.164, or None when it is withheld or not a phone number."""
    text = (raw or "").strip()
    if not text or text.lower() in WITHHELD:
        return None
    if text.lower().startswith(("client:", "sip:")):
        return None  # a browser or SIP client has no number to opt out
    try:
        e164 = phones.normalise(text)
    except phones.InvalidPhoneNumber:
        return None
    return None if e164 in WITHHELD else e164


def voice_call_step(
    *,
    tenant: Tenant,
    provider: str,
    call_id: str,
    caller: str,
    called: str = "",
    digits: str | None = None,
    turn: int | None = None,
) -> Prompt:
    """Handle one step of a call and return what to say next.

    `turn` is the one the platform echoes from our last prompt; None starts the call
    (or is the platform's retry of the start). `caller` is only read when the call
    starts: the number cannot change during a call.
    """
    with transaction.atomic():
        call, created = _locked_call(tenant, provider, call_id)
        if created:
            prompt = _start(call, caller, called)
        elif call.step == CallStep.ENDED or turn is None or turn != call.turn:
            # A retry of a step already handled, or a late request for an ended call.
            return Prompt.from_dict(call.last_prompt)
        else:
            prompt = _handle(call, (digits or "").strip())
        call.last_prompt = prompt.as_dict()
        call.save()
    logger.info(
        "voice call %s/%s from %s: %s turn %d → %s",
        provider,
        call_id,
        call.caller_masked or "withheld",
        call.step,
        call.turn,
        call.outcome,
    )
    return prompt


def _locked_call(tenant: Tenant, provider: str, call_id: str) -> tuple[VoiceCall, bool]:
    calls = VoiceCall.objects.for_tenant(tenant).select_for_update()
    call = calls.filter(provider=provider, call_id=call_id).first()
    if call is not None:
        call.tenant = tenant  # already known: no query for it on every step
        return call, False
    try:
        with transaction.atomic():  # a savepoint: two first requests of one call may race
            call = VoiceCall.objects.create(tenant=tenant, provider=provider, call_id=call_id)
    except IntegrityError:
        call = calls.get(provider=provider, call_id=call_id)
        call.tenant = tenant
        return call, False
    voice_calls_end_stale(tenant=tenant)
    return call, True


def _stale_after() -> timedelta:
    value = getattr(settings, "VOICE_CALL_STALE_AFTER", STALE_AFTER)
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def voice_calls_end_stale(*, tenant: Tenant | None = None) -> int:
    """Calls the caller hung up mid-menu never tell us: mark them abandoned and drop their
    raw number. Runs when a tenant's next call starts and, for every tenant, from beat
    (`tasks.end_stale_voice_calls`), so no number outlives a call by much."""
    now = timezone.now()
    calls = (
        VoiceCall.objects.for_tenant(tenant)
        if tenant is not None
        else VoiceCall.objects.unscoped(reason="beat ends every tenant's stale calls")
    )
    stale = calls.filter(outcome=Outcome.IN_PROGRESS, updated_at__lt=now - _stale_after()).update(
        outcome=Outcome.ABANDONED, step=CallStep.ENDED, caller="", ended_at=now
    )
    # An ended call never needs the number; a crash between steps must not leave one.
    calls.exclude(outcome=Outcome.IN_PROGRESS).exclude(caller="").update(caller="")
    return stale


def voice_call_status(*, tenant: Tenant, provider: str, call_id: str, status: str) -> bool:
    """The platform says the call is over (Twilio's StatusCallback): a call still in the
    menu is abandoned and its raw number dropped. True when the call was known."""
    if status not in ENDED_STATUSES:
        return False
    with transaction.atomic():
        call = (
            VoiceCall.objects.for_tenant(tenant)
            .select_for_update()
            .filter(provider=provider, call_id=call_id)
            .first()
        )
        if call is None:
            return False
        if call.outcome == Outcome.IN_PROGRESS:
            call.outcome, call.step, call.ended_at = Outcome.ABANDONED, CallStep.ENDED, timezone.now()
        call.caller = ""
        call.save()
    logger.info("voice call %s/%s ended by the platform: %s", provider, call_id, status)
    return True


# --- the flow ---------------------------------------------------------------------------


def _start(call: VoiceCall, caller: str, called: str) -> Prompt:
    tenant = call.tenant
    book = PromptBook(tenant)
    call.language = tenant.default_language if tenant.default_language in (ZH, EN) else ZH
    call.called = (called or "")[:64]
    e164 = caller_e164(caller)
    if e164 is not None:
        call.caller_hash = phones.tenant_phone_hash(tenant.pk, e164)
        call.caller_masked = phones.mask(e164)
    setting = channel_setting(tenant=tenant, channel=RequestChannel.HOTLINE)
    if not (setting.enabled and setting.ivr_enabled):
        return _end(call, book, Outcome.UNAVAILABLE, K.UNAVAILABLE, both_languages=True)
    if e164 is None:
        return _end(call, book, Outcome.WITHHELD, K.WITHHELD, both_languages=True)
    call.caller = e164
    call.step = CallStep.MENU
    return _prompt(call, book)


def _handle(call: VoiceCall, key: str) -> Prompt:
    book = PromptBook(call.tenant)
    call.digits = [
        *call.digits,
        {"turn": call.turn, "step": call.step, "digits": key[:20], "at": timezone.now().isoformat()},
    ]
    call.turn += 1
    services = selectors.voice_services(tenant=call.tenant)
    if call.step == CallStep.CONFIRM and call.service_code and _service(call, services) is None:
        # Deleted since the caller chose it: say so and go back to the menu, never file
        # it as something else.
        call.service_code, call.step, call.attempts = "", CallStep.MENU, 0
        return _prompt(call, book, services, problem=K.SERVICE_GONE)
    accepted = _keys(call, services)
    if key not in accepted:
        call.attempts += 1
        if call.attempts > MAX_REPEATS:
            return _end(call, book, Outcome.GAVE_UP, K.GIVE_UP)
        return _prompt(call, book, services, problem=K.INVALID if key else K.NO_INPUT)
    call.attempts = 0
    if key == "9":
        return _prompt(call, book, services)
    if call.step == CallStep.MENU:
        _menu_key(call, key)
    elif call.step == CallStep.SERVICES:
        _services_key(call, key, services)
    elif call.step == CallStep.CONFIRM:
        if key == "0":
            call.service_code, call.step = "", CallStep.MENU
        elif key == "1":
            return _file(call, book)
    return _prompt(call, book, services)


def _menu_key(call: VoiceCall, key: str) -> None:
    if key == "8":
        call.language = EN if call.language == ZH else ZH
    elif key == "1":
        call.service_code, call.step = "", CallStep.CONFIRM
    elif key == "2":
        call.page, call.step = 0, CallStep.SERVICES


def _services_key(call: VoiceCall, key: str, services: list[Service]) -> None:
    if key == "0":
        call.step = CallStep.MENU
    elif key == "8":
        call.page += 1
    elif key == "*":
        call.page = max(call.page - 1, 0)
    elif not services:  # "1": all marketing, the only choice there is
        call.service_code, call.step = "", CallStep.CONFIRM
    else:
        chosen = _page(services, call.page)[int(key) - 1]
        call.service_code = chosen.code
        call.step = CallStep.CONFIRM


def _page(services: list[Service], page: int) -> list[Service]:
    return services[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]


def _has_more(services: list[Service], page: int) -> bool:
    return len(services) > (page + 1) * PAGE_SIZE


def _keys(call: VoiceCall, services: list[Service]) -> tuple[str, ...]:
    """The keys the current step accepts."""
    if call.step == CallStep.MENU:
        return ("1", "2", "9", "8")
    if call.step == CallStep.SERVICES:
        if not services:
            return ("1", "0", "9")
        numbered = tuple(str(n) for n in range(1, len(_page(services, call.page)) + 1))
        more = ("8",) if _has_more(services, call.page) else ()
        previous = ("*",) if call.page > 0 else ()
        return (*numbered, *more, *previous, "0", "9")
    if call.step == CallStep.CONFIRM:
        return ("1", "0", "9")
    return ()


def _prompt(
    call: VoiceCall,
    book: PromptBook,
    services: list[Service] | None = None,
    problem: str = "",
) -> Prompt:
    """The current step's prompt, after the reason it is repeated if there is one."""
    language = call.language
    if services is None:
        services = selectors.voice_services(tenant=call.tenant)
    texts: list[str] = [book.text(problem, language)] if problem else []
    extra: list[Say] = []
    if call.step == CallStep.MENU:
        texts.append(book.text(K.MENU, language))
        other = EN if language == ZH else ZH
        extra.append(Say(book.text(K.LANGUAGE_SWITCH, other), SPEECH_LANGUAGE[other]))
    elif call.step == CallStep.SERVICES:
        if not services:
            texts.append(book.text(K.NO_SERVICES, language))
        else:
            items = [
                book.text(K.SERVICE_ITEM, language, {"service_name": _name(s, language), "key": str(n)})
                for n, s in enumerate(_page(services, call.page), start=1)
            ]
            joiner = "" if language == ZH else " "
            more = joiner.join(
                [
                    *([book.text(K.SERVICES_MORE, language)] if _has_more(services, call.page) else []),
                    *([book.text(K.SERVICES_PREVIOUS, language)] if call.page > 0 else []),
                ]
            )
            texts.append(book.text(K.SERVICES, language, {"services": joiner.join(items), "more": more}))
    elif call.step == CallStep.CONFIRM:
        terms = book.terms(language)
        # Said once: not again when the tenant's own terms already say it is final.
        final = call.tenant.allow_resubscribe or says_final(terms)
        irreversible = "" if final else book.text(K.IRREVERSIBLE, language)
        values = {"scope": _scope(call, book, services), "terms": terms, "irreversible": irreversible}
        texts.append(book.text(K.CONFIRM, language, values))
    joiner = "" if language == ZH else " "
    says = (*_says(joiner.join(texts), SPEECH_LANGUAGE[language]), *extra)
    return Prompt(says=says, turn=call.turn, outcome=call.outcome, digits=_keys(call, services))


def _says(text: str, language: str) -> tuple[Say, ...]:
    return tuple(Say(piece, language) for piece in split_say(text))


def _name(service: Service, language: str) -> str:
    return (service.name_en or service.name) if language == EN else service.name


def _service(call: VoiceCall, services: list[Service]) -> Service | None:
    return next((s for s in services if s.code == call.service_code), None)


def _scope(call: VoiceCall, book: PromptBook, services: list[Service]) -> str:
    if not call.service_code:
        return book.text(K.SCOPE_ALL, call.language)
    found = _service(call, services)
    return _name(found, call.language) if found else call.service_code


def _end(
    call: VoiceCall,
    book: PromptBook,
    outcome: str,
    key: str,
    *,
    values: dict[str, str] | None = None,
    both_languages: bool = False,
    reference: str = "",
) -> Prompt:
    """End the call: say `key` (in both languages when the caller had no chance to choose)."""
    call.outcome = outcome
    call.step = CallStep.ENDED
    call.ended_at = timezone.now()
    call.caller = ""  # not needed any more: a filed request holds the number until erasure
    languages = [call.language]
    if both_languages:
        languages.append(EN if call.language == ZH else ZH)
    says = tuple(
        say for lang in languages for say in _says(book.text(key, lang, values), SPEECH_LANGUAGE[lang])
    )
    return Prompt(says=says, turn=call.turn, outcome=outcome, reference=reference)


def _file(call: VoiceCall, book: PromptBook) -> Prompt:
    try:
        filed = unsubscribe_request_create(
            tenant=call.tenant,
            phone=call.caller,
            channel=RequestChannel.HOTLINE,
            verification_method=VerificationMethod.CALLER_ID,
            verification_evidence={
                "provider": call.provider,
                "call_id": call.call_id,
                "called": call.called,
                "digits": [entry["digits"] for entry in call.digits],
            },
            services=[call.service_code] if call.service_code else None,
            language=call.language,
            idempotency_key=f"ivr:{call.provider}:{call.call_id}",
            # The call was let in while the menu was on: a key press already made is
            # never dropped because the tenant switched the channel off meanwhile.
            allow_disabled_channel=True,
            filed_by=f"voice menu via {call.provider}",
        )
    except (UnsubscribeError, phones.InvalidPhoneNumber) as exc:
        logger.warning("voice call %s from %s could not be filed: %s", call.call_id, call.caller_masked, exc)
        return _end(call, book, Outcome.FAILED, K.FAILED)
    call.request = filed.request
    reference = filed.request.reference
    services = selectors.voice_services(tenant=call.tenant)
    landline = phones.is_fixed_line(call.caller)  # the core sends no SMS there either
    values = {
        "scope": _scope(call, book, services),
        "reference": spell_reference(reference, call.language),
        "confirmation": (CONFIRMATION_NONE if landline else CONFIRMATION_SMS)[call.language],
    }
    return _end(call, book, Outcome.FILED, K.FILED, values=values, reference=reference)


# --- configuration, preview and erasure -------------------------------------------------


def voice_credential_set(
    *, tenant: Tenant, provider: str, secret: str | None = None, enabled: bool = True
) -> VoiceCredential:
    """Create or update a tenant's voice platform credential. `secret` None keeps the
    stored one (a new credential needs one)."""
    if provider not in VoiceProvider.values:
        raise ValueError(f"unknown voice provider {provider!r}")
    with transaction.atomic():
        credential = (
            VoiceCredential.objects.for_tenant(tenant).select_for_update().filter(provider=provider).first()
        )
        if credential is None:
            if not secret:
                raise ValueError(f"{provider} voice is not configured for {tenant.slug} yet: give its secret")
            credential = VoiceCredential(tenant=tenant, provider=provider)
        if secret:
            credential.secret = secret
        credential.enabled = enabled
        credential.save()
    return credential


@dataclass(frozen=True)
class ScriptLine:
    title: str
    says: list[Say] = field(default_factory=list)
    keys: tuple[str, ...] = ()


def voice_script(*, tenant: Tenant, language: str) -> list[ScriptLine]:
    """The whole call as a caller would hear it, with the tenant's current texts, for the
    admin preview. Built from the same functions as real calls, on unsaved rows."""
    book = PromptBook(tenant)
    services = selectors.voice_services(tenant=tenant)
    call = VoiceCall(tenant=tenant, provider=VoiceProvider.GENERIC, call_id="preview", language=language)
    lines = []
    steps = [
        (str(PromptKey.MENU.label), CallStep.MENU, ""),
        (str(PromptKey.SERVICES.label), CallStep.SERVICES, ""),
        (str(PromptKey.CONFIRM.label), CallStep.CONFIRM, ""),
    ]
    if services:
        steps.append((f"{PromptKey.CONFIRM.label}: {services[0].name}", CallStep.CONFIRM, services[0].code))
    for title, step, service_code in steps:
        call.step, call.service_code = step, service_code
        prompt = _prompt(call, book, services)
        lines.append(ScriptLine(title, list(prompt.says), prompt.digits))
    call.step, call.service_code = CallStep.MENU, ""
    wrong = _prompt(call, book, services, K.INVALID)
    lines.append(ScriptLine(str(PromptKey.INVALID.label), list(wrong.says), wrong.digits))
    sample_reference = spell_reference("K7M2-9QXP", language)
    for key, values in (
        (
            K.FILED,
            {
                "scope": book.text(K.SCOPE_ALL, language),
                "reference": sample_reference,
                "confirmation": CONFIRMATION_SMS[language],
            },
        ),
        (K.WITHHELD, None),
        (K.UNAVAILABLE, None),
        (K.GIVE_UP, None),
        (K.FAILED, None),
    ):
        lines.append(
            ScriptLine(
                str(key.label), list(_says(book.text(key, language, values), SPEECH_LANGUAGE[language]))
            )
        )
    return lines


def voice_calls_erase_number(request: UnsubscribeRequest) -> int:
    """Registered as the "voice.calls" data source (an erase step): the raw number of
    any call from this number that still has it."""
    cleared = (
        VoiceCall.objects.for_tenant(request.tenant_id)
        .filter(caller_hash=request.phone_hash)
        .exclude(caller="")
        .update(caller="")
    )
    return cleared
