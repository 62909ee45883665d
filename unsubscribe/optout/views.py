"""The public opt-out pages: a tenant's page, its four-step flow, the status page and the hub.

The flow's state lives in the session (the id of the pending code, then the id of
the filed request); the number never appears in a URL. Every step answers the
same for any valid number until the code is verified.

Every POST answers with a redirect (post/redirect/get, see prg.py): a form with
errors is shown again by the GET that follows, so Back and reload never re-post.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache

from lanzuan import contrast
from tenants.models import Tenant
from unsubscribe import links
from unsubscribe import selectors as core
from unsubscribe.channels import ways_to_unsubscribe
from unsubscribe.donotmarket.selectors import platform_do_not_market_entry as do_not_market_entry
from unsubscribe.errors import ChannelDisabled, UnknownServices, UnsubscribeError
from unsubscribe.models import RequestChannel, StillReceivingReport, UnsubscribeRequest
from unsubscribe.proofs import signed_receipt
from unsubscribe.requests import selectors as request_selectors
from unsubscribe.sendlogs import selectors as sendlog_selectors
from unsubscribe.sendlogs import services as sendlog_services
from unsubscribe.suppressions import selectors as suppression_selectors

from . import limits, prg, selectors, services
from .forms import ChoiceForm, CodeForm, HubChoiceForm, NumberForm, StatusForm
from .models import PhoneVerification

HUB_KEY = "optout:hub"
HUB_RECEIPT_KEY = "optout:hub:receipt"
# What a form with errors shows again after the redirect. Never the number (it stays
# out of the session; optout.js puts it back from the browser's own storage) and
# never a one-time code.
NUMBER_FIELDS = ("country",)
DEFAULT_BRAND = "#1F4FD8"  # the hub's, and optout.css's


def active_tenant(slug: str) -> Tenant:
    """The tenant of a person's page; its times read in the tenant's zone (the request's
    zone is reset after it: lanzuan.middleware.TimeZoneMiddleware)."""
    tenant = get_object_or_404(Tenant, slug=slug, is_active=True)
    timezone.activate(tenant.zoneinfo)
    return tenant


def page_language() -> str:
    return "en" if (translation.get_language() or "").startswith("en") else "zh-hans"


def _flow_key(tenant: Tenant) -> str:
    return f"optout:{tenant.pk}"


def _receipt_key(tenant: Tenant) -> str:
    return f"optout:{tenant.pk}:receipt"


def _refusal_message(refusal: limits.Refusal) -> str:
    if refusal.reason == "cooldown":
        return ngettext(
            "Please wait %(seconds)s second before asking for a new code.",
            "Please wait %(seconds)s seconds before asking for a new code.",
            refusal.retry_after,
        ) % {"seconds": refusal.retry_after}
    if refusal.reason == "number":
        minutes = max(limits.limit("LANZUAN_OTP_NUMBER_WINDOW_SECONDS") // 60, 1)
        return ngettext(
            "Too many codes were sent to this number. Try again in %(minutes)s minute.",
            "Too many codes were sent to this number. Try again in %(minutes)s minutes.",
            minutes,
        ) % {"minutes": minutes}
    if refusal.reason == "ip":
        return _(
            "Too many codes were requested from your network today. Try again tomorrow, "
            "or use one of the other ways to unsubscribe on this page."
        )
    return _(
        "We cannot send more codes right now. Please try again later, "
        "or use one of the other ways to unsubscribe on this page."
    )


def _refusal_status(refusal: limits.Refusal | None) -> int:
    # "unavailable": the tenant's OTP setup is broken, not the person's doing.
    return 503 if refusal is not None and refusal.reason == "unavailable" else 429


def _code_error_message(error: services.CodeError) -> str:
    if error.reason == "wrong":
        return ngettext(
            "That code is not right. You have %(count)s try left.",
            "That code is not right. You have %(count)s tries left.",
            error.attempts_left,
        ) % {"count": error.attempts_left}
    if error.reason == "attempts":
        return _("Too many wrong tries. Ask for a new code.")
    return _("This code has expired. Ask for a new code.")


def render_page(
    request: HttpRequest, template: str, tenant: Tenant | None, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    base: dict[str, Any] = {
        "tenant": tenant,
        "language": page_language(),
        "brand": contrast.brand_palette(tenant.brand_colour if tenant is not None else DEFAULT_BRAND),
    }
    if tenant is not None:
        base["ways"] = ways_to_unsubscribe(tenant=tenant, language=page_language())
    return render(request, f"optout/{template}", {**base, **context}, status=status)


def _ttl_minutes() -> int:
    return max(limits.limit("LANZUAN_OTP_TTL_SECONDS") // 60, 1)


# --- the tenant's public page (issue 8) ---------------------------------------------------------


def tenant_home(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = active_tenant(slug)
    return render_page(request, "tenant_home.html", tenant, {})


# --- step 1: the number -------------------------------------------------------------------------


@never_cache
def unsubscribe_start(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = active_tenant(slug)
    if not core.channel_enabled(tenant=tenant, channel=RequestChannel.WEB):
        if request.method == "POST":
            return redirect("unsubscribe-start", slug=tenant.slug)
        return render_page(request, "web_disabled.html", tenant, {})
    if request.method == "POST":
        form = NumberForm(request.POST)
        if form.is_valid():
            e164 = form.cleaned_data["e164"]
            current = _current_verification(request, tenant)
            if current is not None and services.verification_pending_for(current, e164):
                # Back to step 1 with the same number: the code already sent still works.
                messages.info(request, _("We already sent a code to this number. It is still valid."))
                return redirect("optout-code", slug=tenant.slug)
            sent = services.verification_start(
                tenant=tenant,
                e164=e164,
                ip=limits.client_ip(request),
                language=page_language(),
                replaces=current,
            )
            if sent.refusal is None and sent.verification is not None:
                request.session[_flow_key(tenant)] = {"v": sent.verification.pk}
                return redirect("optout-code", slug=tenant.slug)
            if sent.refusal is not None:
                form.add_error("phone", _refusal_message(sent.refusal))
                return prg.back_with_errors(
                    request, form, status=_refusal_status(sent.refusal), keep=NUMBER_FIELDS
                )
        return prg.back_with_errors(request, form, status=400, keep=NUMBER_FIELDS)
    parked = prg.take(request)
    form = prg.rebuild(NumberForm, parked)
    status = parked.status if parked else 200
    return render_page(request, "start.html", tenant, {"form": form, "step": 1}, status=status)


def _current_verification(request: HttpRequest, tenant: Tenant) -> PhoneVerification | None:
    flow = request.session.get(_flow_key(tenant)) or {}
    return selectors.verification_for_page(tenant=tenant, verification_id=flow.get("v"))


def _start_again(request: HttpRequest, tenant: Tenant, message: str = "") -> HttpResponseRedirect:
    request.session.pop(_flow_key(tenant), None)
    if message:
        messages.info(request, message)
    return redirect("unsubscribe-start", slug=tenant.slug)


# --- step 2: the code ----------------------------------------------------------------------------


@never_cache
def unsubscribe_code(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = active_tenant(slug)
    verification = _current_verification(request, tenant)
    if verification is None or verification.used_at is not None:
        return _start_again(request, tenant)
    if services.verification_usable(verification):
        return redirect("optout-choose", slug=tenant.slug)
    if request.method == "POST" and request.POST.get("action") == "resend":
        return _code_resend(request, tenant, verification)
    if request.method == "POST":
        return _code_submit(request, tenant, verification)
    parked = prg.take(request)
    context = {
        "form": prg.rebuild(CodeForm, parked),
        "step": 2,
        "masked": verification.phone_masked,
        "ttl_minutes": _ttl_minutes(),
        "resend_error": parked.extra.get("resend_error", "") if parked else "",
        "resend_url": request.path,
    }
    return render_page(request, "code.html", tenant, context, status=parked.status if parked else 200)


def _code_resend(request: HttpRequest, tenant: Tenant, verification: PhoneVerification) -> HttpResponse:
    if not verification.phone:
        return _start_again(request, tenant, _("Please enter your number again."))
    sent = services.verification_start(
        tenant=tenant,
        e164=verification.phone,
        ip=limits.client_ip(request),
        language=page_language(),
        replaces=verification,
    )
    if sent.verification is not None:
        request.session[_flow_key(tenant)] = {"v": sent.verification.pk}
        messages.success(request, _("We sent a new code."))
        return redirect("optout-code", slug=tenant.slug)
    resend_error = _refusal_message(sent.refusal) if sent.refusal else ""
    return prg.back_with_errors(
        request, None, status=_refusal_status(sent.refusal), extra={"resend_error": resend_error}
    )


def _code_submit(request: HttpRequest, tenant: Tenant, verification: PhoneVerification) -> HttpResponse:
    form = CodeForm(request.POST)
    if form.is_valid():
        try:
            services.verification_check(
                verification=verification, code=form.cleaned_data["code"], ip=limits.client_ip(request)
            )
        except services.CodeError as exc:
            if exc.reason == "used":
                return _start_again(request, tenant)
            form.add_error("code", _code_error_message(exc))
        else:
            return redirect("optout-choose", slug=tenant.slug)
    return prg.back_with_errors(request, form, status=400)


# --- step 3: what to stop, the terms, the confirmation -------------------------------------------------


@never_cache
def unsubscribe_choose(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = active_tenant(slug)
    verification = _current_verification(request, tenant)
    if verification is None or not services.verification_usable(verification):
        note = _("For your security, please verify your number again.") if verification else ""
        return _start_again(request, tenant, note)
    service_rows = selectors.active_services(tenant=tenant)
    if request.method == "POST" and request.POST.get("action"):
        return _choose_one_tap(request, tenant, verification)
    if request.method == "POST":
        form = ChoiceForm(request.POST, services=service_rows)
        status = 400
        if form.is_valid():
            try:
                filed = services.web_request_file(
                    tenant=tenant,
                    verification=verification,
                    services=form.chosen_codes(),
                    language=page_language(),
                )
            except UnsubscribeError as exc:
                form.add_error(None, exc.message)
                status = 403 if isinstance(exc, ChannelDisabled) else 400
            else:
                request.session.pop(_flow_key(tenant), None)
                request.session[_receipt_key(tenant)] = filed.pk
                return redirect("optout-receipt", slug=tenant.slug)
        return prg.back_with_errors(request, form, status=status, keep=("scope", "services"))
    parked = prg.take(request)
    form = prg.rebuild(ChoiceForm, parked, services=service_rows)
    status = parked.status if parked else 200
    context = {
        "form": form,
        "step": 3,
        "masked": verification.phone_masked,
        "services": service_rows,
        "terms": tenant.terms_for(page_language()),
        "facts": selectors.terms_facts(tenant=tenant),
        "already": suppression_selectors.suppression_status_for_hash(
            tenant=tenant, phone_hash=verification.phone_hash
        ),
        "chosen": form["services"].value() or [],
        "suggestions": selectors.service_suggestions(
            tenant=tenant,
            phone_hash=verification.phone_hash,
            subscribed=selectors.subscribed_codes(tenant=tenant, phone_hash=verification.phone_hash),
        ),
        "alternatives": [
            (a, a.label(page_language())) for a in selectors.alternatives_offered(tenant=tenant)
        ],
    }
    return render_page(request, "choose.html", tenant, context, status=status)


def _choose_one_tap(request: HttpRequest, tenant: Tenant, verification: PhoneVerification) -> HttpResponse:
    """The page's one-tap buttons: stop all marketing (the receipt follows), stop one service
    or take an alternative (the page stays, for the person's next choice)."""
    action = request.POST.get("action", "")
    try:
        if action == "stop_all":
            filed = services.web_request_file(
                tenant=tenant, verification=verification, services=None, language=page_language()
            )
            request.session.pop(_flow_key(tenant), None)
            request.session[_receipt_key(tenant)] = filed.pk
            return redirect("optout-receipt", slug=tenant.slug)
        if action == "stop_service":
            found = services.service_stop(
                tenant=tenant,
                verification=verification,
                service_code=_posted_service(tenant, request.POST),
                language=page_language(),
            )
            messages.success(request, _stopped_message(found))
        elif action == "alternative":
            messages.success(request, _alternative_message(tenant, verification, request.POST))
    except UnsubscribeError as exc:
        messages.error(request, exc.message)
    return redirect("optout-choose", slug=tenant.slug)


# --- step 4: the receipt ------------------------------------------------------------------------------


@never_cache
def unsubscribe_receipt(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = active_tenant(slug)
    request_id = request.session.get(_receipt_key(tenant))
    found = (
        UnsubscribeRequest.objects.for_tenant(tenant).filter(pk=request_id).first()
        if isinstance(request_id, int)
        else None
    )
    if found is None:
        return redirect("unsubscribe-start", slug=tenant.slug)
    return render_page(request, "receipt.html", tenant, {"step": 4, **receipt_context(tenant, found)})


def signed_receipt_context(found: UnsubscribeRequest) -> dict[str, Any]:
    """The signed receipt's download link (by the status link's token) and its compact text."""
    token = links.status_token(found)
    return {
        "receipt_download": reverse("optout-signed-receipt", args=[found.tenant.slug]) + "?token=" + token,
        "receipt_compact": signed_receipt.compact(signed_receipt.signed_receipt(found)),
    }


def receipt_context(tenant: Tenant, found: UnsubscribeRequest) -> dict[str, Any]:
    """What the receipt page shows for a request (the web flow and the email link)."""
    return {
        **signed_receipt_context(found),
        "found": found,
        "scope_names": [s.name for s in found.services.all().order_by("name")],
        "status_link": links.status_url(found, absolute=False),
        "next_steps": [answer for _question, answer in selectors.terms_facts(tenant=tenant)[3:]],
    }


# --- the status page ------------------------------------------------------------------------------------


@never_cache
def request_status(request: HttpRequest, slug: str) -> HttpResponse:
    """By the signed link from the receipt or the confirmation SMS, or by the
    reference and the number together (neither alone reveals anything)."""
    tenant = active_tenant(slug)
    found: UnsubscribeRequest | None = None
    token = request.GET.get("token", "")
    token_error = ""
    ip = limits.client_ip(request)
    if request.method == "POST" and request.POST.get("action") == "still_receiving":
        return _still_receiving(request, tenant, ip)
    if request.method == "POST":
        form = StatusForm(request.POST)
        status = 400
        if not limits.status_lookup_allowed(ip):
            form.add_error(None, _("Too many look-ups from your network. Try again in an hour."))
            status = 429
        elif form.is_valid():
            found = request_selectors.request_for_person(
                tenant=tenant, reference=form.cleaned_data["reference"], phone=form.cleaned_data["phone"]
            )
            if found is not None:
                # The signed link shows the same page by GET: reload and Back stay harmless.
                return redirect(links.status_url(found, absolute=False))
            limits.status_lookup_failed(ip)
            form.add_error(None, _("No request matches this reference and number."))
            status = 404
        return prg.back_with_errors(request, form, status=status, keep=("reference",))
    parked = prg.take(request)
    form = prg.rebuild(StatusForm, parked)
    status = parked.status if parked else 200
    if token and parked is None:
        reference = links.reference_from_token(token, tenant.pk)
        if reference:
            found = request_selectors.request_by_reference(tenant=tenant, reference=reference)
        if found is None:
            token_error = _("This link is not valid any more. Enter your reference and number instead.")
    context: dict[str, Any] = {"form": form, "found": found, "token_error": token_error}
    if found is not None:
        state_class, state_text = selectors.state_summary(found)
        context.update(
            signed_receipt_context(found),
            timeline=selectors.request_timeline(found),
            promises=selectors.request_promises(found),
            state_class=state_class,
            state_text=state_text,
            after_opt_out=sendlog_selectors.request_after_opt_out(request=found),
            token=token,
        )
    return render_page(request, "status.html", tenant, context, status=status)


def _still_receiving(request: HttpRequest, tenant: Tenant, ip: str) -> HttpResponse:
    """The person's "I still get messages", from the status page of their request (by its signed
    link, the page's own proof). The page's look-up limit per network applies: each report counts."""
    token = request.POST.get("token", "")
    reference = links.reference_from_token(token, tenant.pk) if token else None
    found = request_selectors.request_by_reference(tenant=tenant, reference=reference) if reference else None
    if found is None:
        messages.error(
            request, _("This link is not valid any more. Enter your reference and number instead.")
        )
        return redirect("unsubscribe-status", slug=tenant.slug)
    if not limits.status_lookup_allowed(ip):
        messages.error(request, _("Too many look-ups from your network. Try again in an hour."))
        return redirect(links.status_url(found, absolute=False))
    limits.status_lookup_failed(ip)  # a report counts against the network's look-ups, as a miss does
    sendlog_services.still_receiving_report(
        tenant=tenant, request=found, channel=StillReceivingReport.Channel.WEB
    )
    messages.success(
        request,
        _("Thank you. We have recorded that you still get messages and told %(tenant)s.")
        % {"tenant": tenant.name},
    )
    return redirect(links.status_url(found, absolute=False))


@never_cache
def signed_receipt_download(request: HttpRequest, slug: str) -> HttpResponse:
    """The signed receipt as a JSON file, by the status link's token (the receipt page and the
    status page link here; the confirmation SMS's link leads to the status page)."""
    tenant = active_tenant(slug)
    reference = links.reference_from_token(request.GET.get("token", ""), tenant.pk)
    found = request_selectors.request_by_reference(tenant=tenant, reference=reference) if reference else None
    if found is None:
        return redirect(f"{reverse('unsubscribe-status', args=[tenant.slug])}?token=invalid")
    receipt = signed_receipt.signed_receipt(found)
    response = HttpResponse(
        signed_receipt.receipt_file(receipt), content_type="application/json; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{signed_receipt.receipt_filename(receipt)}"'
    return response


# --- the one-stop hub -------------------------------------------------------------------------------------


def _hub_flow(request: HttpRequest) -> dict[str, Any]:
    flow = request.session.get(HUB_KEY)
    return flow if isinstance(flow, dict) else {}


def _hub_start_again(request: HttpRequest, message: str = "") -> HttpResponseRedirect:
    request.session.pop(HUB_KEY, None)
    if message:
        messages.info(request, message)
    return redirect("optout-hub")


@never_cache
def hub_start(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = NumberForm(request.POST)
        if form.is_valid():
            e164 = form.cleaned_data["e164"]
            previous = selectors.verification_for_hub(verification_id=_hub_flow(request).get("v"))
            sent = services.verification_start(
                tenant=selectors.hub_verification_owner(e164=e164),
                e164=e164,
                ip=limits.client_ip(request),
                language=page_language(),
                purpose=PhoneVerification.Purpose.HUB,
                replaces=previous,
            )
            if sent.refusal is not None:
                form.add_error("phone", _refusal_message(sent.refusal))
                return prg.back_with_errors(
                    request, form, status=_refusal_status(sent.refusal), keep=NUMBER_FIELDS
                )
            # With no provider for the number nothing was sent, but the next page
            # looks the same: the hub does not tell who markets to a number.
            request.session[HUB_KEY] = _hub_state(sent.verification, e164)
            return redirect("optout-hub-code")
        return prg.back_with_errors(request, form, status=400, keep=NUMBER_FIELDS)
    parked = prg.take(request)
    form = prg.rebuild(NumberForm, parked)
    status = parked.status if parked else 200
    return render_page(request, "hub_start.html", None, {"form": form, "step": 1}, status=status)


def _hub_state(verification: PhoneVerification | None, e164: str) -> dict[str, Any]:
    if verification is not None:
        return {"v": verification.pk}
    return services.hub_phantom_state(e164)


@never_cache
def hub_code(request: HttpRequest) -> HttpResponse:
    flow = _hub_flow(request)
    if not flow:
        return redirect("optout-hub")
    verification = selectors.verification_for_hub(verification_id=flow.get("v"))
    elsewhere = _hub_code_elsewhere(request, flow, verification)
    if elsewhere is not None:
        return elsewhere
    if request.method == "POST" and request.POST.get("action") == "resend":
        return _hub_code_resend(request, flow, verification)
    if request.method == "POST":
        return _hub_code_submit(request, flow, verification)
    parked = prg.take(request)
    masked = verification.phone_masked if verification is not None else flow.get("masked", "")
    context = {
        "form": prg.rebuild(CodeForm, parked),
        "step": 2,
        "masked": masked,
        "ttl_minutes": _ttl_minutes(),
        "resend_error": parked.extra.get("resend_error", "") if parked else "",
        "resend_url": request.path,
    }
    return render_page(request, "hub_code.html", None, context, status=parked.status if parked else 200)


def _hub_code_elsewhere(
    request: HttpRequest, flow: dict[str, Any], verification: PhoneVerification | None
) -> HttpResponse | None:
    """Where the code page sends a person it has no code to ask of (None: nowhere, ask)."""
    if verification is None:
        return None if "hash" in flow else _hub_start_again(request)
    if verification.used_at is not None:
        return _hub_start_again(request)
    if services.verification_usable(verification):
        return redirect("optout-hub-choose")
    return None


def _hub_code_resend(
    request: HttpRequest, flow: dict[str, Any], verification: PhoneVerification | None
) -> HttpResponse:
    ip = limits.client_ip(request)
    if verification is None:
        refusal = services.hub_phantom_resend(phone_hash=flow["hash"], head=flow["head"], ip=ip)
        if refusal is None:
            request.session[HUB_KEY] = services.hub_phantom_renewed(flow)
    else:
        if not verification.phone:
            return _hub_start_again(request, _("Please enter your number again."))
        sent = services.verification_start(
            tenant=verification.tenant,
            e164=verification.phone,
            ip=ip,
            language=page_language(),
            purpose=PhoneVerification.Purpose.HUB,
            replaces=verification,
        )
        refusal = sent.refusal
        if sent.verification is not None:
            request.session[HUB_KEY] = {"v": sent.verification.pk}
    if refusal is None:
        messages.success(request, _("We sent a new code."))
        return redirect("optout-hub-code")
    return prg.back_with_errors(
        request, None, status=_refusal_status(refusal), extra={"resend_error": _refusal_message(refusal)}
    )


def _hub_code_submit(
    request: HttpRequest, flow: dict[str, Any], verification: PhoneVerification | None
) -> HttpResponse:
    form = CodeForm(request.POST)
    if form.is_valid():
        try:
            _hub_code_check(request, flow, verification, form.cleaned_data["code"])
        except services.CodeError as exc:
            if exc.reason == "used":
                return _hub_start_again(request)
            form.add_error("code", _code_error_message(exc))
        else:
            return redirect("optout-hub-choose")
    return prg.back_with_errors(request, form, status=400)


def _hub_code_check(
    request: HttpRequest, flow: dict[str, Any], verification: PhoneVerification | None, code: str
) -> None:
    """Raises services.CodeError unless `code` is right (never, for a phantom flow)."""
    if verification is not None:
        services.verification_check(verification=verification, code=code, ip=limits.client_ip(request))
        return
    counted, error = services.hub_phantom_check(flow)
    if counted is not None:
        request.session[HUB_KEY] = counted
    raise error


@never_cache
def hub_choose(request: HttpRequest) -> HttpResponse:
    verification = selectors.verification_for_hub(verification_id=_hub_flow(request).get("v"))
    if verification is None or not services.verification_usable(verification):
        note = _("For your security, please verify your number again.") if verification else ""
        return _hub_start_again(request, note)
    providers = selectors.hub_providers(e164=verification.phone)
    open_providers = [p for p in providers if not p.already_stopped]
    choices = [(str(p.tenant.pk), p.tenant.name) for p in open_providers]
    if request.method == "POST" and request.POST.get("action"):
        return _hub_one_tap(request, verification, providers)
    if request.method == "POST":
        form = HubChoiceForm(request.POST, providers=choices)
        if form.is_valid():
            chosen = {int(pk) for pk in form.cleaned_data["providers"]}
            return _hub_file(
                request, verification, [p.tenant for p in open_providers if p.tenant.pk in chosen]
            )
        return prg.back_with_errors(request, form, status=400, keep=("providers",))
    parked = prg.take(request)
    form = prg.rebuild(HubChoiceForm, parked, providers=choices)
    language = page_language()
    digests = selectors.hub_digests(e164=verification.phone)
    # Each provider's own terms, in the person's language, shown before they confirm; its
    # services as the person experienced them lately, with a stop and its alternatives each.
    rows = [
        (
            p,
            [] if p.already_stopped else selectors.hub_terms_facts(provider=p),
            p.tenant.terms_for(language),
            selectors.service_suggestions(
                tenant=p.tenant, phone_hash=digests[p.tenant.pk], subscribed=p.codes
            ),
            [(a, a.label(language)) for a in selectors.alternatives_offered(tenant=p.tenant)],
        )
        for p in providers
    ]
    blocked = do_not_market_entry(e164=verification.phone)
    past = [
        (r, links.status_url(r, absolute=False)) for r in selectors.hub_past_requests(e164=verification.phone)
    ]
    context = {
        "form": form,
        "step": 3,
        "masked": verification.phone_masked,
        "providers": providers,
        "open_providers": open_providers,
        "rows": rows,
        "past": past,
        "blocked": blocked,
        "liftable": blocked is not None and services.do_not_market_liftable(verification, blocked),
        "chosen": form["providers"].value() or [] if parked else [c for c, _n in choices],
    }
    return render_page(request, "hub_choose.html", None, context, status=parked.status if parked else 200)


def _hub_file(request: HttpRequest, verification: PhoneVerification, tenants: list[Tenant]) -> HttpResponse:
    """File one request per provider in `tenants`, then show the receipts (the visit ends)."""
    try:
        outcome = services.hub_requests_file(
            verification=verification, tenants=tenants, language=page_language()
        )
    except services.VerificationLapsed as exc:
        return _hub_start_again(request, exc.message)
    request.session.pop(HUB_KEY, None)
    request.session[HUB_RECEIPT_KEY] = {
        "requests": [r.pk for r in outcome.requests],
        "refused": [[t.pk, message] for t, message in outcome.refused],
    }
    return redirect("optout-hub-receipt")


def _hub_one_tap(
    request: HttpRequest, verification: PhoneVerification, providers: list[selectors.Provider]
) -> HttpResponse:
    """The hub's buttons, each one tap: stop everything (every provider not stopped yet), one
    provider, one service, an alternative, and the platform-wide do-not-market entry."""
    action = request.POST.get("action", "")
    if action == "stop_all":
        return _hub_file(request, verification, [p.tenant for p in providers if not p.already_stopped])
    if action in {"dnm_set", "dnm_lift"}:
        return _hub_do_not_market(request, verification, providers, lift=action == "dnm_lift")
    provider = next((p for p in providers if str(p.tenant.pk) == request.POST.get("tenant")), None)
    if provider is None:
        messages.error(request, _("This provider is not in your list any more."))
        return redirect("optout-hub-choose")
    try:
        if action == "stop_provider":
            outcome = services.hub_requests_file(
                verification=verification, tenants=[provider.tenant], language=page_language(), retire=False
            )
            for _tenant, refusal in outcome.refused:
                messages.error(request, refusal)
            for found in outcome.requests:
                messages.success(request, _stopped_message(found))
        elif action == "stop_service":
            found = services.service_stop(
                tenant=provider.tenant,
                verification=verification,
                service_code=_posted_service(provider.tenant, request.POST),
                language=page_language(),
            )
            messages.success(request, _stopped_message(found))
        elif action == "alternative":
            messages.success(request, _alternative_message(provider.tenant, verification, request.POST))
    except UnsubscribeError as exc:
        messages.error(request, exc.message)
    return redirect("optout-hub-choose")


def _hub_do_not_market(
    request: HttpRequest, verification: PhoneVerification, providers: list[selectors.Provider], *, lift: bool
) -> HttpResponse:
    if not lift:
        services.hub_do_not_market_set(verification=verification, tenants=[p.tenant for p in providers])
        messages.success(request, _("Done: no provider may send you marketing any more, including new ones."))
        return redirect("optout-hub-choose")
    entry = do_not_market_entry(e164=verification.phone)
    if entry is not None:
        try:
            services.hub_do_not_market_lift(verification=verification, entry=entry)
        except services.FreshCodeNeeded as exc:
            messages.error(request, exc.message)
            return redirect("optout-hub-choose")
    return _hub_start_again(request, _("The block is lifted. Each provider's own opt-outs stay in force."))


def _stopped_message(found: UnsubscribeRequest) -> str:
    return _("Stopped at %(tenant)s. Your reference: %(reference)s.") % {
        "tenant": found.tenant.name,
        "reference": found.reference,
    }


def _posted_service(tenant: Tenant, data: Any) -> str:
    """The posted service code, if it is one of the tenant's active services (anything else,
    NUL bytes included, never reaches a query); raises UnknownServices."""
    code = str(data.get("service", ""))
    if code not in {s.code for s in selectors.active_services(tenant=tenant)}:
        raise UnknownServices(_("Unknown service."))
    return code


def _alternative_message(tenant: Tenant, verification: PhoneVerification, data: Any) -> str:
    """Apply the alternative posted (kind, scope); raises UnsubscribeError."""
    kind = str(data.get("kind", ""))
    scope = _posted_service(tenant, data) if data.get("service") else "*"
    until = services.alternative_choose(tenant=tenant, verification=verification, kind=kind, scope=scope)
    if until is not None:
        return _("Paused at %(tenant)s until %(when)s; it resumes by itself then.") % {
            "tenant": tenant.name,
            "when": timezone.localtime(until, tenant.zoneinfo).strftime("%Y-%m-%d"),
        }
    return _("Recorded: %(tenant)s has been told your preference.") % {"tenant": tenant.name}


@never_cache
def hub_receipt(request: HttpRequest) -> HttpResponse:
    data = request.session.get(HUB_RECEIPT_KEY)
    if not isinstance(data, dict):
        return redirect("optout-hub")
    ids = [pk for pk in data.get("requests", []) if isinstance(pk, int)]
    # Cross-tenant by design: the hub filed one request per provider for this person.
    found = list(
        UnsubscribeRequest.objects.unscoped(
            reason="the hub filed one request per provider, ids from the session"
        )
        .filter(pk__in=ids)
        .select_related("tenant")
        .order_by("tenant__name")
    )
    receipts = [(r, links.status_url(r, absolute=False)) for r in found]
    refused_ids = {int(pk): message for pk, message in data.get("refused", [])}
    refused = [
        (t, refused_ids[t.pk], ways_to_unsubscribe(tenant=t, language=page_language()))
        for t in Tenant.objects.filter(pk__in=list(refused_ids)).order_by("name")
    ]
    return render_page(
        request, "hub_receipt.html", None, {"step": 4, "receipts": receipts, "refused": refused}
    )
